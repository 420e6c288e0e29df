package openmldbtest

import (
	"strconv"

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
	return string(appendKeyText(nil, cols, keyCols, cells))
}

// appendKeyText appends keyText's result to dst.
func appendKeyText(dst []byte, cols []column, keyCols []int, cells []cell) []byte {
	for n, ci := range keyCols {
		if n > 0 {
			dst = append(dst, '|')
		}
		c := cells[ci]
		if c.null {
			dst = append(dst, nullToken...)
			continue
		}
		switch cols[ci].typ {
		case typepb.DataType_kBool:
			dst = strconv.AppendBool(dst, c.b)
		case typepb.DataType_kVarchar, typepb.DataType_kString:
			if c.s == "" {
				dst = append(dst, emptyToken...)
			} else {
				dst = append(dst, c.s...)
			}
		default:
			// smallint/int/bigint/timestamp as decimal; date as its packed int.
			dst = strconv.AppendInt(dst, c.i, 10)
		}
	}
	return dst
}
