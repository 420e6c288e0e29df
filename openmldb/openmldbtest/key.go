package openmldbtest

import (
	"strconv"
	"strings"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// Tokens the SDK substitutes in index keys (hybridse NONETOKEN and EMPTY_STRING).
const (
	nullToken  = "!N@U#L$L%"
	emptyToken = "!@#$%"
)

// keyText rebuilds the index key the SDK would send for a decoded row: the key columns' texts
// joined by '|'.
func keyText(cols []column, keyCols []int, cells []cell) string {
	var sb strings.Builder
	for n, ci := range keyCols {
		if n > 0 {
			sb.WriteByte('|')
		}
		c := cells[ci]
		if c.null {
			sb.WriteString(nullToken)
			continue
		}
		switch cols[ci].typ {
		case typepb.DataType_kBool:
			sb.WriteString(strconv.FormatBool(c.b))
		case typepb.DataType_kVarchar, typepb.DataType_kString:
			if c.s == "" {
				sb.WriteString(emptyToken)
			} else {
				sb.WriteString(c.s)
			}
		default:
			// smallint/int/bigint/timestamp as decimal; date as its packed int.
			sb.WriteString(strconv.FormatInt(c.i, 10))
		}
	}
	return sb.String()
}
