package openmldb

import "strconv"

// Tokens the SDK substitutes in index keys (hybridse::codec::NONETOKEN / EMPTY_STRING).
const (
	NullKeyToken  = "!N@U#L$L%"
	EmptyKeyToken = "!@#$%"
)

// AppendKey appends the index key text of row for the key columns keyCols (schema positions, in
// key order) to dst: values rendered as the SDK does and joined by '|'.
func AppendKey(dst []byte, cols []Column, keyCols []int, row Row) []byte {
	for n, i := range keyCols {
		if n > 0 {
			dst = append(dst, '|')
		}
		dst = appendKeyPart(dst, cols[i].Type, row[i])
	}
	return dst
}

func appendKeyPart(dst []byte, t DataType, v Value) []byte {
	if !v.Valid {
		return append(dst, NullKeyToken...)
	}
	switch {
	case t.IsString():
		if v.S == "" {
			return append(dst, EmptyKeyToken...)
		}
		return append(dst, v.S...)
	case t == TypeBool:
		return strconv.AppendBool(dst, v.B)
	case t == TypeSmallInt:
		return strconv.AppendInt(dst, int64(int16(v.I)), 10)
	case t == TypeInt || t == TypeDate:
		return strconv.AppendInt(dst, int64(int32(v.I)), 10)
	case t == TypeFloat:
		return strconv.AppendFloat(dst, float64(float32(v.F)), 'g', -1, 32)
	case t == TypeDouble:
		return strconv.AppendFloat(dst, v.F, 'g', -1, 64)
	}
	return strconv.AppendInt(dst, v.I, 10)
}
