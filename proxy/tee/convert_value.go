package tee

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

// conv is how one record value becomes one cell; chosen once per (schema, table) pair.
type conv uint8

const (
	convInt       conv = iota + 1 // integer → SMALLINT/INT/BIGINT with a range check
	convIntFloat                  // integer → FLOAT/DOUBLE, only when exact
	convTimestamp                 // integer or Timestamp ms → TIMESTAMP, not negative
	convFloat                     // float/double → FLOAT/DOUBLE (double → FLOAT only when exact)
	convBool                      // boolean → BOOL
	convString                    // string → STRING
	convDate                      // Date days → DATE
	convDateText                  // "YYYY-MM-DD" → DATE (schemaless records)
	convDecimal                   // Decimal → DOUBLE, only without loss
)

// Civil-date bounds of an OpenMLDB DATE, in days since 1970-01-01.
const (
	minDateDays = -25567  // 1900-01-01
	maxDateDays = 2932896 // 9999-12-31
)

// chooseConv decides how a field of schema f is written into a column of type t, or why it
// cannot be.
func chooseConv(f *connect.Schema, t openmldb.DataType) (conv, error) {
	bad := func() (conv, error) {
		return 0, fmt.Errorf("cannot write %s into %s column", describe(f), t)
	}
	switch f.Logical {
	case connect.LogicalDate:
		if t == openmldb.TypeDate {
			return convDate, nil
		}
		return bad()
	case connect.LogicalTimestamp:
		switch t {
		case openmldb.TypeTimestamp:
			return convTimestamp, nil
		case openmldb.TypeBigInt:
			return convInt, nil
		}
		return bad()
	case connect.LogicalTime:
		switch t {
		case openmldb.TypeInt, openmldb.TypeBigInt:
			return convInt, nil
		}
		return bad()
	case connect.LogicalDecimal:
		if t == openmldb.TypeDouble {
			return convDecimal, nil
		}
		return bad()
	}
	switch f.Type {
	case connect.TypeInt8, connect.TypeInt16, connect.TypeInt32, connect.TypeInt64:
		switch t {
		case openmldb.TypeSmallInt, openmldb.TypeInt, openmldb.TypeBigInt:
			return convInt, nil
		case openmldb.TypeFloat, openmldb.TypeDouble:
			return convIntFloat, nil
		case openmldb.TypeTimestamp:
			return convTimestamp, nil
		}
	case connect.TypeFloat, connect.TypeDouble:
		if t == openmldb.TypeFloat || t == openmldb.TypeDouble {
			return convFloat, nil
		}
	case connect.TypeBoolean:
		if t == openmldb.TypeBool {
			return convBool, nil
		}
	case connect.TypeString:
		switch {
		case t.IsString():
			return convString, nil
		case t == openmldb.TypeDate:
			return convDateText, nil
		}
	}
	return bad()
}

// describe names a field's Connect type for messages: "int32", "Date", "Decimal".
func describe(f *connect.Schema) string {
	switch f.Logical {
	case connect.LogicalDate:
		return "Date"
	case connect.LogicalTime:
		return "Time"
	case connect.LogicalTimestamp:
		return "Timestamp"
	case connect.LogicalDecimal:
		return "Decimal"
	}
	return f.Type.String()
}

// cell converts one non-null value. The reason string of an error becomes a RecordError's Reason.
func cell(c conv, src connect.Type, t openmldb.DataType, v *connect.Value) (openmldb.Value, error) {
	switch c {
	case convInt:
		if lo, hi := intRange(t); v.Int < lo || v.Int > hi {
			return openmldb.Value{}, fmt.Errorf("value %d overflows %s", v.Int, t)
		}
		return openmldb.Int(v.Int), nil
	case convIntFloat:
		f := float64(v.Int) // one rounding, to the column's precision
		if t == openmldb.TypeFloat {
			f = float64(float32(v.Int))
		}
		if f >= math.MaxInt64 || int64(f) != v.Int {
			return openmldb.Value{}, fmt.Errorf("value %d cannot be represented exactly as %s", v.Int, t)
		}
		return openmldb.Float(f), nil
	case convTimestamp:
		if v.Int < 0 {
			return openmldb.Value{}, fmt.Errorf("negative timestamp %d", v.Int)
		}
		return openmldb.Int(v.Int), nil
	case convFloat:
		f := v.Float
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return openmldb.Value{}, fmt.Errorf("value %v is not a finite number", f)
		}
		if t == openmldb.TypeFloat && src == connect.TypeDouble && float64(float32(f)) != f {
			return openmldb.Value{}, fmt.Errorf("value %v cannot be represented exactly as FLOAT", f)
		}
		return openmldb.Float(f), nil
	case convBool:
		return openmldb.Bool(v.Bool), nil
	case convString:
		return openmldb.Str(v.Str), nil
	case convDate:
		return dateFromDays(v.Int)
	case convDateText:
		return dateFromText(v.Str)
	case convDecimal:
		return decimalToDouble(v)
	}
	return openmldb.Value{}, fmt.Errorf("internal: no conversion %d", c)
}

func intRange(t openmldb.DataType) (int64, int64) {
	switch t {
	case openmldb.TypeSmallInt:
		return math.MinInt16, math.MaxInt16
	case openmldb.TypeInt:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

// dateFromDays turns a Connect Date (days since 1970-01-01, UTC) into OpenMLDB's packed date.
func dateFromDays(days int64) (openmldb.Value, error) {
	if days < minDateDays || days > maxDateDays {
		return openmldb.Value{}, fmt.Errorf("date %d days since 1970-01-01 is outside 1900-01-01..9999-12-31", days)
	}
	y, m, d := civilFromDays(days)
	return openmldb.Date(y, m, d), nil
}

// civilFromDays is the proleptic Gregorian date of a day number (H. Hinnant's algorithm).
func civilFromDays(z int64) (year, month, day int) {
	z += 719468
	era := z / 146097
	if z < 0 {
		era = (z - 146096) / 146097 // floor division
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// dateFromText reads "YYYY-MM-DD", as OpenMLDB's APIServer does for DATE columns.
func dateFromText(s string) (openmldb.Value, error) {
	y, m, d, ok := parseDate(s)
	if !ok {
		return openmldb.Value{}, fmt.Errorf("value %q is not a date YYYY-MM-DD", s)
	}
	if y < 1900 || y > 9999 {
		return openmldb.Value{}, fmt.Errorf("date %s is outside 1900-01-01..9999-12-31", s)
	}
	return openmldb.Date(y, m, d), nil
}

func parseDate(s string) (y, m, d int, ok bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	num := func(t string) int {
		n := 0
		for _, c := range []byte(t) {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, m, d = num(s[:4]), num(s[5:7]), num(s[8:])
	if y < 0 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// maxLosslessDigits is the number of significant decimal digits a double always carries
// (DBL_DIG): a decimal with at most this many digits is recovered exactly from the nearest double.
const maxLosslessDigits = 15

// decimalToDouble converts a Decimal when no digit is lost: without its trailing zeros, its
// unscaled value must have at most 15 significant digits; the result is the correctly rounded
// nearest double, which reads back as the same decimal.
func decimalToDouble(v *connect.Value) (openmldb.Value, error) {
	u, scale, ok := v.Int, int64(v.Scale), true
	if v.Big != nil {
		u, scale, ok = shrinkBig(v.Big, scale)
	}
	for ok && u != 0 && u%10 == 0 {
		u /= 10
		scale--
	}
	if !ok || u <= -1e15 || u >= 1e15 {
		return openmldb.Value{}, fmt.Errorf("Decimal %s has more than %d significant digits and cannot be stored losslessly as DOUBLE",
			decimalText(v), maxLosslessDigits)
	}
	var buf [48]byte
	b := strconv.AppendInt(buf[:0], u, 10)
	b = append(b, 'e')
	b = strconv.AppendInt(b, -scale, 10)
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(f, 0) {
		return openmldb.Value{}, fmt.Errorf("Decimal %s overflows DOUBLE", decimalText(v))
	}
	return openmldb.Float(f), nil
}

// shrinkBig strips trailing decimal zeros from a large unscaled value, hoping it then fits int64.
func shrinkBig(b *big.Int, scale int64) (int64, int64, bool) {
	q, r, ten := new(big.Int).Set(b), new(big.Int), big.NewInt(10)
	for !q.IsInt64() {
		if q.QuoRem(q, ten, r); r.Sign() != 0 {
			return 0, 0, false
		}
		scale--
	}
	return q.Int64(), scale, true
}

// decimalText renders a Decimal in plain notation for messages (12.34, 1500), falling back to
// exponent notation for extreme scales.
func decimalText(v *connect.Value) string {
	u := v.Unscaled().String()
	neg := strings.HasPrefix(u, "-")
	digits := strings.TrimPrefix(u, "-")
	scale := int(v.Scale)
	var out string
	switch {
	case scale == 0:
		out = digits
	case scale < 0 && scale >= -20:
		out = digits + strings.Repeat("0", -scale)
	case scale > 0 && scale <= 40:
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		out = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	default:
		out = digits + "e" + strconv.Itoa(-scale)
	}
	if neg {
		return "-" + out
	}
	return out
}

// parseDefault reads a column's stored default text (openmldb-wire.md §6.1) into a value.
func parseDefault(col openmldb.Column) (openmldb.Value, error) {
	s := *col.Default
	switch col.Type {
	case openmldb.TypeBool:
		switch strings.ToLower(s) {
		case "1", "true":
			return openmldb.Bool(true), nil
		case "0", "false":
			return openmldb.Bool(false), nil
		}
	case openmldb.TypeSmallInt, openmldb.TypeInt, openmldb.TypeBigInt, openmldb.TypeTimestamp:
		n, err := strconv.ParseInt(s, 10, 64)
		if lo, hi := intRange(col.Type); err == nil && n >= lo && n <= hi {
			return openmldb.Int(n), nil
		}
	case openmldb.TypeFloat:
		if f, err := strconv.ParseFloat(s, 32); err == nil {
			return openmldb.Float(f), nil
		}
	case openmldb.TypeDouble:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return openmldb.Float(f), nil
		}
	case openmldb.TypeDate:
		if n, err := strconv.ParseInt(s, 10, 32); err == nil {
			if y, m, d := openmldb.UnpackDate(int32(n)); openmldb.PackDate(y, m, d) == int32(n) && m >= 1 && m <= 12 && d >= 1 && d <= daysIn(y, m) {
				return openmldb.Value{Valid: true, I: n}, nil
			}
		}
		if v, err := dateFromText(s); err == nil {
			return v, nil
		}
	case openmldb.TypeVarchar, openmldb.TypeString:
		return openmldb.Str(s), nil
	}
	return openmldb.Value{}, fmt.Errorf("column %q: default %q is not a valid %s", col.Name, s, col.Type)
}
