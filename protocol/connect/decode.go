package connect

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Limits of the Time logical type (JsonConverter: 0 ≤ ms ≤ MILLIS_PER_DAY).
const msPerDay = 86_400_000

// decodeValue converts the JSON value at b[i] with schema s into dst and returns the index after
// it. Errors are *FieldError without a path; callers holding a name add it.
func decodeValue(s *Schema, b []byte, i int, dst *Value, depth int) (int, error) {
	if depth > maxDepth {
		return 0, syntaxErr(i, "nesting deeper than %d", maxDepth)
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, syntaxErr(i, "unexpected end of input")
	}
	c := b[i]
	if c == 'n' {
		next, err := literal(b, i, "null")
		if err != nil {
			return 0, err
		}
		return next, resolveNull(s, dst)
	}
	switch s.Type {
	case TypeBoolean:
		switch c {
		case 't':
			*dst = Value{Kind: KindBool, Bool: true}
			return literal(b, i, "true")
		case 'f':
			*dst = Value{Kind: KindBool}
			return literal(b, i, "false")
		}
	case TypeInt8, TypeInt16, TypeInt32, TypeInt64:
		if isNumberStart(c) {
			end, integral, err := scanNumber(b, i)
			if err != nil {
				return 0, err
			}
			n, err := intValue(s, b[i:end], integral)
			if err != nil {
				return 0, err
			}
			*dst = Value{Kind: KindInt, Int: n}
			return end, nil
		}
	case TypeFloat, TypeDouble:
		if isNumberStart(c) {
			end, _, err := scanNumber(b, i)
			if err != nil {
				return 0, err
			}
			f, err := floatValue(s.Type, b[i:end])
			if err != nil {
				return 0, err
			}
			*dst = Value{Kind: KindFloat, Float: f}
			return end, nil
		}
	case TypeString:
		if c == '"' {
			st, en, esc, next, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			str, err := stringValue(b[st:en], esc)
			if err != nil {
				return 0, err
			}
			*dst = Value{Kind: KindString, Str: str}
			return next, nil
		}
	case TypeBytes:
		return decodeBytes(s, b, i, dst)
	case TypeArray:
		if c == '[' {
			return decodeArray(s, b, i, dst, depth)
		}
	case TypeMap:
		if s.Keys.Type == TypeString && c == '{' {
			return decodeObjectMap(s, b, i, dst, depth)
		}
		if s.Keys.Type != TypeString && c == '[' {
			return decodePairMap(s, b, i, dst, depth)
		}
	case TypeStruct:
		if c == '{' {
			vals := make([]Value, len(s.Fields))
			next, err := decodeStruct(s, b, i, vals, make([]bool, len(s.Fields)), nil, depth)
			if err != nil {
				return 0, err
			}
			*dst = Value{Kind: KindStruct, Elems: vals}
			return next, nil
		}
	}
	return 0, &FieldError{Reason: "expected " + expected(s) + ", got " + jsonKind(c)}
}

func isNumberStart(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

// expected names what a schema wants, for type-mismatch messages.
func expected(s *Schema) string {
	if s.Type == TypeMap && s.Keys.Type != TypeString {
		return "map (array of [key, value] pairs)"
	}
	return s.Type.String()
}

// resolveNull applies JsonConverter's null rule: the schema default, else null when optional,
// else an error.
func resolveNull(s *Schema, dst *Value) error {
	switch {
	case s.Default != nil:
		*dst = *s.Default
	case s.Optional:
		*dst = Value{}
	default:
		return &FieldError{Reason: "invalid null value for required " + s.Type.String() + " field"}
	}
	return nil
}

// intValue checks an integer token against the type (or logical type) of s.
func intValue(s *Schema, tok []byte, integral bool) (int64, error) {
	n, ok := parseInt(tok, integral)
	if !ok {
		if integral || isIntegralText(tok) {
			return 0, &FieldError{Reason: "value " + shown(tok) + " overflows " + s.Type.String()}
		}
		return 0, &FieldError{Reason: "value " + shown(tok) + " is not an integer"}
	}
	var lo, hi int64
	switch s.Logical {
	case LogicalDate:
		if n < math.MinInt32 || n > math.MaxInt32 {
			return 0, &FieldError{Reason: "date " + shown(tok) + " days overflows int32"}
		}
		return n, nil
	case LogicalTime:
		if n < 0 || n > msPerDay {
			return 0, &FieldError{Reason: fmt.Sprintf("time %d is outside 0..%d ms of day", n, msPerDay)}
		}
		return n, nil
	case LogicalTimestamp:
		return n, nil
	default:
		switch s.Type {
		case TypeInt8:
			lo, hi = math.MinInt8, math.MaxInt8
		case TypeInt16:
			lo, hi = math.MinInt16, math.MaxInt16
		case TypeInt32:
			lo, hi = math.MinInt32, math.MaxInt32
		default:
			return n, nil
		}
	}
	if n < lo || n > hi {
		return 0, &FieldError{Reason: "value " + shown(tok) + " overflows " + s.Type.String()}
	}
	return n, nil
}

// parseInt reads an integer token exactly. A token with a fraction or exponent is accepted only
// when its value is a whole number (3.0, 1e3); ok is false for a fraction or an int64 overflow.
func parseInt(tok []byte, integral bool) (int64, bool) {
	if !integral {
		digits, ok := integralDigits(tok)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		return n, err == nil
	}
	neg := tok[0] == '-'
	d := tok
	if neg {
		d = tok[1:]
	}
	if len(d) > 19 { // 19 digits cannot wrap a uint64
		return 0, false
	}
	var u uint64
	for _, c := range d {
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// isIntegralText reports whether a number token with fraction or exponent denotes a whole number.
func isIntegralText(tok []byte) bool {
	_, ok := integralDigits(tok)
	return ok || integralHuge(tok)
}

// splitNumber breaks a valid JSON number token into sign, significant digits (no leading zeros)
// and the decimal exponent of the last digit: value = ±digits × 10^exp.
func splitNumber(tok []byte) (neg bool, digits []byte, exp int64, ok bool) {
	i := 0
	if tok[0] == '-' {
		neg, i = true, 1
	}
	var frac int64
	inFrac := false
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			inFrac = true
		case c >= '0' && c <= '9':
			if len(digits) == 0 && c == '0' {
				if inFrac {
					frac++
				}
				continue
			}
			digits = append(digits, c)
			if inFrac {
				frac++
			}
		default: // exponent
			e, err := strconv.ParseInt(string(tok[i+1:]), 10, 32)
			if err != nil {
				return false, nil, 0, false
			}
			exp = e
			i = len(tok)
		}
	}
	return neg, digits, exp - frac, true
}

// integralDigits returns the decimal integer text of a whole-number token, or false.
func integralDigits(tok []byte) (string, bool) {
	neg, digits, exp, ok := splitNumber(tok)
	if !ok {
		return "", false
	}
	if len(digits) == 0 {
		return "0", true
	}
	for exp < 0 {
		if digits[len(digits)-1] != '0' {
			return "", false
		}
		digits = digits[:len(digits)-1]
		exp++
	}
	if exp+int64(len(digits)) > 20 { // certainly beyond int64; keep the text short
		return "", false
	}
	out := make([]byte, 0, 21+exp)
	if neg {
		out = append(out, '-')
	}
	out = append(out, digits...)
	for ; exp > 0; exp-- {
		out = append(out, '0')
	}
	return string(out), true
}

// integralHuge reports whether a whole-number token is merely too large (as opposed to fractional).
func integralHuge(tok []byte) bool {
	_, digits, exp, ok := splitNumber(tok)
	if !ok {
		return true // exponent beyond int32: a magnitude problem, not a fraction
	}
	for exp < 0 && len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	return exp >= 0
}

// floatValue parses a number token for a float (rounded once, directly to float32) or double.
func floatValue(t Type, tok []byte) (float64, error) {
	bits := 64
	if t == TypeFloat {
		bits = 32
	}
	f, err := strconv.ParseFloat(string(tok), bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, &FieldError{Reason: "value " + shown(tok) + " overflows " + t.String()}
		}
		return 0, &FieldError{Reason: "value " + shown(tok) + " is not a number"}
	}
	return f, nil
}

// decodeBytes reads a base64 string (standard alphabet), or for Decimal also a JSON number.
func decodeBytes(s *Schema, b []byte, i int, dst *Value) (int, error) {
	c := b[i]
	if s.Logical == LogicalDecimal && isNumberStart(c) {
		end, _, err := scanNumber(b, i)
		if err != nil {
			return 0, err
		}
		if err := decimalFromNumber(b[i:end], dst); err != nil {
			return 0, err
		}
		return end, nil
	}
	if c != '"' {
		want := "bytes (base64 string)"
		if s.Logical == LogicalDecimal {
			want = "Decimal (base64 string or number)"
		}
		return 0, &FieldError{Reason: "expected " + want + ", got " + jsonKind(c)}
	}
	st, en, esc, next, err := scanString(b, i)
	if err != nil {
		return 0, err
	}
	raw := b[st:en]
	if esc {
		str, err := stringValue(raw, true)
		if err != nil {
			return 0, err
		}
		raw = []byte(str)
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Decode(buf, raw)
	if err != nil {
		return 0, &FieldError{Reason: "invalid base64 in bytes value"}
	}
	buf = buf[:n]
	if s.Logical != LogicalDecimal {
		*dst = Value{Kind: KindBytes, Str: string(buf)}
		return next, nil
	}
	if len(buf) == 0 {
		return 0, &FieldError{Reason: "empty Decimal bytes"}
	}
	*dst = Value{Kind: KindDecimal, Scale: s.Scale}
	if len(buf) <= 8 {
		var u uint64
		if buf[0]&0x80 != 0 {
			u = math.MaxUint64 // sign extension
		}
		for _, x := range buf {
			u = u<<8 | uint64(x)
		}
		dst.Int = int64(u)
		return next, nil
	}
	dst.Big = twosComplement(buf)
	if dst.Big.IsInt64() {
		dst.Int, dst.Big = dst.Big.Int64(), nil
	}
	return next, nil
}

// twosComplement reads a big-endian two's-complement integer (Java's BigInteger(byte[])).
func twosComplement(buf []byte) *big.Int {
	v := new(big.Int).SetBytes(buf)
	if buf[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(len(buf))*8))
	}
	return v
}

// decimalFromNumber keeps a JSON number's own scale, as JsonConverter does (12.50 → 1250, scale 2).
func decimalFromNumber(tok []byte, dst *Value) error {
	neg, digits, exp, ok := splitNumber(tok)
	if !ok || -exp < math.MinInt32 || -exp > math.MaxInt32 {
		return &FieldError{Reason: "Decimal " + shown(tok) + " has a scale beyond int32"}
	}
	*dst = Value{Kind: KindDecimal, Scale: int32(-exp)}
	if len(digits) == 0 {
		return nil
	}
	if len(digits) <= 18 {
		n, _ := strconv.ParseInt(string(digits), 10, 64)
		if neg {
			n = -n
		}
		dst.Int = n
		return nil
	}
	v, _ := new(big.Int).SetString(string(digits), 10)
	if neg {
		v.Neg(v)
	}
	dst.Big = v
	return nil
}

func decodeArray(s *Schema, b []byte, i int, dst *Value, depth int) (int, error) {
	var elems []Value
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		*dst = Value{Kind: KindArray, Elems: []Value{}}
		return i + 1, nil
	}
	for {
		elems = append(elems, Value{})
		next, err := decodeValue(s.Items, b, i, &elems[len(elems)-1], depth+1)
		if err != nil {
			return 0, within(err, "["+strconv.Itoa(len(elems)-1)+"]")
		}
		if i, err = endOfMember(b, next, ']'); err != nil {
			return 0, err
		}
		if b[i-1] == ']' {
			*dst = Value{Kind: KindArray, Elems: elems}
			return i, nil
		}
	}
}

// decodeObjectMap reads a map with string keys, written as a JSON object.
func decodeObjectMap(s *Schema, b []byte, i int, dst *Value, depth int) (int, error) {
	elems := []Value{}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		*dst = Value{Kind: KindMap, Elems: elems}
		return i + 1, nil
	}
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return 0, syntaxErr(i, "expected member name")
		}
		st, en, esc, next, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		key, err := stringValue(b[st:en], esc)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return 0, syntaxErr(i, "expected ':'")
		}
		elems = append(elems, Value{Kind: KindString, Str: key}, Value{})
		if next, err = decodeValue(s.Values, b, i+1, &elems[len(elems)-1], depth+1); err != nil {
			return 0, within(err, "["+strconv.Quote(key)+"]")
		}
		if i, err = endOfMember(b, next, '}'); err != nil {
			return 0, err
		}
		if b[i-1] == '}' {
			*dst = Value{Kind: KindMap, Elems: elems}
			return i, nil
		}
	}
}

// decodePairMap reads a map with non-string keys, written as an array of [key, value] arrays.
func decodePairMap(s *Schema, b []byte, i int, dst *Value, depth int) (int, error) {
	elems := []Value{}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		*dst = Value{Kind: KindMap, Elems: elems}
		return i + 1, nil
	}
	for n := 0; ; n++ {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '[' {
			return 0, within(&FieldError{Reason: "map entry must be a [key, value] array"}, "["+strconv.Itoa(n)+"]")
		}
		elems = append(elems, Value{}, Value{})
		next, err := decodeValue(s.Keys, b, i+1, &elems[len(elems)-2], depth+1)
		if err == nil {
			next = skipWS(b, next)
			if next >= len(b) || b[next] != ',' {
				err = &FieldError{Reason: "map entry must be a [key, value] array"}
			} else {
				next, err = decodeValue(s.Values, b, next+1, &elems[len(elems)-1], depth+1)
			}
		}
		if err == nil {
			next = skipWS(b, next)
			if next >= len(b) || b[next] != ']' {
				err = &FieldError{Reason: "map entry must be a [key, value] array"}
			}
		}
		if err != nil {
			return 0, within(err, "["+strconv.Itoa(n)+"]")
		}
		if i, err = endOfMember(b, next+1, ']'); err != nil {
			return 0, err
		}
		if b[i-1] == ']' {
			*dst = Value{Kind: KindMap, Elems: elems}
			return i, nil
		}
	}
}

// decodeStruct reads the object at b[i] == '{' into vals (one per field of s). present is scratch
// of the same length. Members the schema does not declare are skipped and, when extra is not
// nil, their names appended to it.
func decodeStruct(s *Schema, b []byte, i int, vals []Value, present []bool, extra *[]string, depth int) (int, error) {
	clear(present)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		hint := 0
		for {
			i = skipWS(b, i)
			if i >= len(b) || b[i] != '"' {
				return 0, syntaxErr(i, "expected member name")
			}
			var name []byte
			var next int
			var err error
			idx := -1
			if hint < len(s.Fields) && s.Fields[hint].plainName {
				// Members usually come in schema order: try the expected name's bytes first.
				f := s.Fields[hint].Field
				if end := i + 1 + len(f); end < len(b) && b[end] == '"' && string(b[i+1:end]) == f {
					name, next, idx = b[i+1:end], end+1, hint
				}
			}
			if name == nil {
				st, en, esc, nx, err := scanString(b, i)
				if err != nil {
					return 0, err
				}
				name, next = b[st:en], nx
				if esc {
					str, err := stringValue(name, true)
					if err != nil {
						return 0, err
					}
					name = []byte(str)
				}
				idx = s.lookup(name, hint)
			}
			i = skipWS(b, next)
			if i >= len(b) || b[i] != ':' {
				return 0, syntaxErr(i, "expected ':'")
			}
			if idx >= 0 {
				f := s.Fields[idx]
				if present[idx] {
					return 0, &FieldError{Field: f.Field, Reason: "duplicate member"}
				}
				present[idx] = true
				if next, err = decodeValue(f, b, i+1, &vals[idx], depth+1); err != nil {
					return 0, within(err, f.Field)
				}
				hint = idx + 1
			} else {
				if extra != nil {
					*extra = append(*extra, string(name))
				}
				if next, err = skipValue(b, i+1, depth+1); err != nil {
					return 0, err
				}
			}
			if i, err = endOfMember(b, next, '}'); err != nil {
				return 0, err
			}
			if b[i-1] == '}' {
				break
			}
		}
	}
	for k, seen := range present {
		if !seen {
			if err := resolveNull(s.Fields[k], &vals[k]); err != nil {
				return 0, within(err, s.Fields[k].Field)
			}
		}
	}
	return i, nil
}
