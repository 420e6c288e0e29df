package tee

import (
	"errors"
	"math"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

func seedMessage(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("../../protocol/connect/testdata/seed_message.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seedColumns is the table of golden case seed_message (openmldb/testdata/golden/openmldb-rows.jsonl).
func seedColumns() []openmldb.Column {
	return []openmldb.Column{
		{Name: "c1_int16", Type: openmldb.TypeSmallInt},
		{Name: "c2_int32", Type: openmldb.TypeInt},
		{Name: "c3_int64", Type: openmldb.TypeBigInt},
		{Name: "c4_float", Type: openmldb.TypeFloat},
		{Name: "c5_double", Type: openmldb.TypeDouble},
		{Name: "c6_boolean", Type: openmldb.TypeBool},
		{Name: "c7_string", Type: openmldb.TypeString},
		{Name: "c8_date", Type: openmldb.TypeDate},
		{Name: "c9_timestamp", Type: openmldb.TypeTimestamp},
	}
}

// seedRow is the golden case's values: 1, 2, 3, 4.4f (bits 408ccccd), 5.555 (bits
// 40163851eb851eb8), true, "c77777", 2022-04-27, 1651051906000.
func seedRow() openmldb.Row {
	return openmldb.Row{
		openmldb.Int(1), openmldb.Int(2), openmldb.Int(3),
		openmldb.Float(float64(math.Float32frombits(0x408ccccd))),
		openmldb.Float(math.Float64frombits(0x40163851eb851eb8)),
		openmldb.Bool(true), openmldb.Str("c77777"),
		openmldb.Date(2022, 4, 27), openmldb.Int(1651051906000),
	}
}

func TestSeedMessageRow(t *testing.T) {
	var rec connect.Record
	if err := connect.NewParser(0).Parse(seedMessage(t), &rec); err != nil {
		t.Fatal(err)
	}
	c, err := NewConverter(seedColumns(), ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	row, err := c.Convert(&rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(row, seedRow()) {
		t.Fatalf("row\n got %+v\nwant %+v", row, seedRow())
	}
	if row[7].I != 0x007A031B {
		t.Fatalf("c8_date packed %#x, want 0x7a031b", row[7].I)
	}
	// The columns auto-create would make give the same row.
	cols, err := ColumnsFromSchema(rec.Schema)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cols, seedColumns()) {
		t.Fatalf("columns\n got %+v\nwant %+v", cols, seedColumns())
	}
}

// env wraps field schemas (JSON, comma separated) and a payload object into an envelope.
func env(fields, payload string) []byte {
	return []byte(`{"schema":{"type":"struct","fields":[` + fields + `]},"payload":` + payload + `}`)
}

func convertEnv(t *testing.T, cols []openmldb.Column, opts ConvertOptions, doc []byte) (openmldb.Row, error) {
	t.Helper()
	var rec connect.Record
	if err := connect.NewParser(0).Parse(doc, &rec); err != nil {
		t.Fatalf("parse: %v", err)
	}
	c, err := NewConverter(cols, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c.Convert(&rec, nil)
}

func col(name string, t openmldb.DataType) openmldb.Column {
	return openmldb.Column{Name: name, Type: t}
}

func strp(s string) *string { return &s }

func TestConvertValues(t *testing.T) {
	const (
		date = `"name":"org.apache.kafka.connect.data.Date"`
		ts   = `"name":"org.apache.kafka.connect.data.Timestamp"`
		tm   = `"name":"org.apache.kafka.connect.data.Time"`
		dec  = `"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}`
	)
	cases := []struct {
		name   string
		field  string // schema of field "v"
		value  string
		column openmldb.DataType
		want   openmldb.Value
	}{
		{"int8 to smallint", `{"field":"v","type":"int8"}`, `-7`, openmldb.TypeSmallInt, openmldb.Int(-7)},
		{"int64 to smallint in range", `{"field":"v","type":"int64"}`, `32767`, openmldb.TypeSmallInt, openmldb.Int(32767)},
		{"int32 to bigint", `{"field":"v","type":"int32"}`, `-5`, openmldb.TypeBigInt, openmldb.Int(-5)},
		{"int32 to double", `{"field":"v","type":"int32"}`, `3`, openmldb.TypeDouble, openmldb.Float(3)},
		{"int64 power of two to float", `{"field":"v","type":"int64"}`, `33554432`, openmldb.TypeFloat, openmldb.Float(33554432)},
		{"decimal trailing zeros", `{"field":"v","type":"bytes",` + dec + `}`, `1234567890123450000000000`, openmldb.TypeDouble, openmldb.Float(1.23456789012345e24)},
		{"big decimal trailing zeros", `{"field":"v","type":"bytes",` + dec + `}`, `"MHe1jV03g5GYAAAA"`, openmldb.TypeDouble, openmldb.Float(1.5e26)},
		{"int64 to timestamp", `{"field":"v","type":"int64"}`, `1000`, openmldb.TypeTimestamp, openmldb.Int(1000)},
		{"float to double", `{"field":"v","type":"float"}`, `0.5`, openmldb.TypeDouble, openmldb.Float(0.5)},
		{"double to float exact", `{"field":"v","type":"double"}`, `0.25`, openmldb.TypeFloat, openmldb.Float(0.25)},
		{"boolean", `{"field":"v","type":"boolean"}`, `false`, openmldb.TypeBool, openmldb.Bool(false)},
		{"string to varchar", `{"field":"v","type":"string"}`, `"x"`, openmldb.TypeVarchar, openmldb.Str("x")},
		{"date epoch", `{"field":"v","type":"int32",` + date + `}`, `0`, openmldb.TypeDate, openmldb.Date(1970, 1, 1)},
		{"date 1900-01-01", `{"field":"v","type":"int32",` + date + `}`, `-25567`, openmldb.TypeDate, openmldb.Date(1900, 1, 1)},
		{"date 9999-12-31", `{"field":"v","type":"int32",` + date + `}`, `2932896`, openmldb.TypeDate, openmldb.Date(9999, 12, 31)},
		{"date leap day", `{"field":"v","type":"int64",` + date + `}`, `11016`, openmldb.TypeDate, openmldb.Date(2000, 2, 29)},
		{"timestamp", `{"field":"v","type":"int64",` + ts + `}`, `1651051906000`, openmldb.TypeTimestamp, openmldb.Int(1651051906000)},
		{"timestamp to bigint", `{"field":"v","type":"int64",` + ts + `}`, `7`, openmldb.TypeBigInt, openmldb.Int(7)},
		{"time to int", `{"field":"v","type":"int32",` + tm + `}`, `3600000`, openmldb.TypeInt, openmldb.Int(3600000)},
		{"decimal to double", `{"field":"v","type":"bytes",` + dec + `}`, `"BNI="`, openmldb.TypeDouble, openmldb.Float(12.34)},
		{"decimal number to double", `{"field":"v","type":"bytes",` + dec + `}`, `-0.1`, openmldb.TypeDouble, openmldb.Float(-0.1)},
		{"decimal 15 digits", `{"field":"v","type":"bytes",` + dec + `}`, `9999999999999.99`, openmldb.TypeDouble, openmldb.Float(9999999999999.99)},
		{"null optional", `{"field":"v","type":"int32","optional":true}`, `null`, openmldb.TypeInt, openmldb.Null()},
		{"schema default", `{"field":"v","type":"int32","default":9}`, `null`, openmldb.TypeInt, openmldb.Int(9)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row, err := convertEnv(t, []openmldb.Column{col("v", c.column)}, ConvertOptions{}, env(c.field, `{"v":`+c.value+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(row, openmldb.Row{c.want}) {
				t.Fatalf("got %+v, want %+v", row[0], c.want)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	const (
		date = `"name":"org.apache.kafka.connect.data.Date"`
		ts   = `"name":"org.apache.kafka.connect.data.Timestamp"`
		dec  = `"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}`
	)
	cases := []struct {
		name    string
		cols    []openmldb.Column
		fields  string
		payload string
		want    string
	}{
		{"int64 overflows smallint", []openmldb.Column{col("v", openmldb.TypeSmallInt)},
			`{"field":"v","type":"int64"}`, `{"v":40000}`, `field "v": value 40000 overflows SMALLINT`},
		{"int64 overflows int", []openmldb.Column{col("v", openmldb.TypeInt)},
			`{"field":"v","type":"int64"}`, `{"v":-2147483649}`, `field "v": value -2147483649 overflows INT`},
		{"negative timestamp", []openmldb.Column{col("v", openmldb.TypeTimestamp)},
			`{"field":"v","type":"int64",` + ts + `}`, `{"v":-1}`, `field "v": negative timestamp -1`},
		{"negative int64 into timestamp", []openmldb.Column{col("v", openmldb.TypeTimestamp)},
			`{"field":"v","type":"int64"}`, `{"v":-1000}`, `field "v": negative timestamp -1000`},
		{"date before 1900", []openmldb.Column{col("v", openmldb.TypeDate)},
			`{"field":"v","type":"int32",` + date + `}`, `{"v":-25568}`, `field "v": date -25568 days since 1970-01-01 is outside 1900-01-01..9999-12-31`},
		{"date after 9999", []openmldb.Column{col("v", openmldb.TypeDate)},
			`{"field":"v","type":"int32",` + date + `}`, `{"v":2932897}`, `field "v": date 2932897 days since 1970-01-01 is outside 1900-01-01..9999-12-31`},
		{"double into float inexact", []openmldb.Column{col("v", openmldb.TypeFloat)},
			`{"field":"v","type":"double"}`, `{"v":5.555}`, `field "v": value 5.555 cannot be represented exactly as FLOAT`},
		{"int64 into double inexact", []openmldb.Column{col("v", openmldb.TypeDouble)},
			`{"field":"v","type":"int64"}`, `{"v":9007199254740993}`, `field "v": value 9007199254740993 cannot be represented exactly as DOUBLE`},
		{"int32 into float inexact", []openmldb.Column{col("v", openmldb.TypeFloat)},
			`{"field":"v","type":"int32"}`, `{"v":16777217}`, `field "v": value 16777217 cannot be represented exactly as FLOAT`},
		{"decimal too precise", []openmldb.Column{col("v", openmldb.TypeDouble)},
			`{"field":"v","type":"bytes",` + dec + `}`, `{"v":12345678901234.56}`, `field "v": Decimal 12345678901234.56 has more than 15 significant digits and cannot be stored losslessly as DOUBLE`},
		{"big decimal", []openmldb.Column{col("v", openmldb.TypeDouble)},
			`{"field":"v","type":"bytes",` + dec + `}`, `{"v":"AQAAAAAAAAAB"}`, `field "v": Decimal 184467440737095516.17 has more than 15 significant digits and cannot be stored losslessly as DOUBLE`},
		{"tiny decimal", []openmldb.Column{col("v", openmldb.TypeDouble)},
			`{"field":"v","type":"bytes",` + dec + `}`, `{"v":-0.0000000000000001234567890123456}`, `field "v": Decimal -0.0000000000000001234567890123456 has more than 15 significant digits and cannot be stored losslessly as DOUBLE`},
		{"field without column", []openmldb.Column{col("v", openmldb.TypeInt)},
			`{"field":"v","type":"int32"},{"field":"w","type":"int32"}`, `{"v":1,"w":2}`, `field "w": the table has no such column`},
		{"string into int", []openmldb.Column{col("v", openmldb.TypeInt)},
			`{"field":"v","type":"string"}`, `{"v":"1"}`, `field "v": cannot write string into INT column`},
		{"double into bigint", []openmldb.Column{col("v", openmldb.TypeBigInt)},
			`{"field":"v","type":"double"}`, `{"v":1}`, `field "v": cannot write double into BIGINT column`},
		{"date into timestamp", []openmldb.Column{col("v", openmldb.TypeTimestamp)},
			`{"field":"v","type":"int32",` + date + `}`, `{"v":1}`, `field "v": cannot write Date into TIMESTAMP column`},
		{"int into date", []openmldb.Column{col("v", openmldb.TypeDate)},
			`{"field":"v","type":"int32"}`, `{"v":1}`, `field "v": cannot write int32 into DATE column`},
		{"bytes into string", []openmldb.Column{col("v", openmldb.TypeString)},
			`{"field":"v","type":"bytes"}`, `{"v":"AA=="}`, `field "v": cannot write bytes into STRING column`},
		{"array", []openmldb.Column{col("v", openmldb.TypeString)},
			`{"field":"v","type":"array","items":{"type":"string"}}`, `{"v":[]}`, `field "v": cannot write array into STRING column`},
		{"missing not null column", []openmldb.Column{col("v", openmldb.TypeInt), {Name: "nn", Type: openmldb.TypeInt, NotNull: true}},
			`{"field":"v","type":"int32"}`, `{"v":1}`, `field "nn": missing value for NOT NULL column`},
		{"null into not null", []openmldb.Column{{Name: "v", Type: openmldb.TypeInt, NotNull: true}},
			`{"field":"v","type":"int32","optional":true}`, `{"v":null}`, `field "v": null value for NOT NULL column`},
		{"undeclared payload member", []openmldb.Column{col("v", openmldb.TypeInt), col("x", openmldb.TypeInt)},
			`{"field":"v","type":"int32"}`, `{"v":1,"x":2}`, `field "x": the record's schema does not declare it`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := convertEnv(t, c.cols, ConvertOptions{}, env(c.fields, c.payload))
			var re *RecordError
			if !errors.As(err, &re) || err.Error() != c.want {
				t.Fatalf("got  %v (%T)\nwant %s", err, err, c.want)
			}
		})
	}
}

func TestConvertNullRecord(t *testing.T) {
	_, err := convertEnv(t, []openmldb.Column{col("v", openmldb.TypeInt)}, ConvertOptions{},
		[]byte(`{"schema":{"type":"struct","optional":true,"fields":[]},"payload":null}`))
	if err == nil || err.Error() != "record payload is null" {
		t.Fatalf("got %v", err)
	}
}

func TestConvertDefaultsAndMissing(t *testing.T) {
	cols := []openmldb.Column{
		col("v", openmldb.TypeInt),
		{Name: "n", Type: openmldb.TypeString},                                        // NULL
		{Name: "s", Type: openmldb.TypeString, Default: strp("dflt")},                 // default text
		{Name: "b", Type: openmldb.TypeBool, Default: strp("1")},                      // 1/0 and true/false both read
		{Name: "d", Type: openmldb.TypeDate, Default: strp("7996187"), NotNull: true}, // packed date, NOT NULL with default is fine
		{Name: "t", Type: openmldb.TypeTimestamp, Default: strp("1651051906000")},     // ms
		{Name: "f", Type: openmldb.TypeFloat, Default: strp("4.4")},                   // float text
		{Name: "d2", Type: openmldb.TypeDate, Default: strp("2022-04-27")},            // tolerated ISO text
		{Name: "sm", Type: openmldb.TypeSmallInt, Default: strp("-3")},                // int text
		{Name: "bf", Type: openmldb.TypeBool, Default: strp("FALSE")},                 // case-insensitive
	}
	row, err := convertEnv(t, cols, ConvertOptions{}, env(`{"field":"v","type":"int32"}`, `{"v":5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := openmldb.Row{
		openmldb.Int(5), openmldb.Null(), openmldb.Str("dflt"), openmldb.Bool(true),
		{Valid: true, I: 7996187}, openmldb.Int(1651051906000), openmldb.Float(float64(float32(4.4))),
		openmldb.Date(2022, 4, 27), openmldb.Int(-3), openmldb.Bool(false),
	}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row\n got %+v\nwant %+v", row, want)
	}
	if y, m, d := openmldb.UnpackDate(7996187); y != 2022 || m != 4 || d != 27 {
		t.Fatalf("7996187 unpacks to %d-%d-%d", y, m, d)
	}
}

func TestNewConverterErrors(t *testing.T) {
	cases := []struct {
		name string
		cols []openmldb.Column
		opts ConvertOptions
		want string
	}{
		{"bad int default", []openmldb.Column{{Name: "a", Type: openmldb.TypeSmallInt, Default: strp("70000")}}, ConvertOptions{},
			`column "a": default "70000" is not a valid SMALLINT`},
		{"bad bool default", []openmldb.Column{{Name: "a", Type: openmldb.TypeBool, Default: strp("yes")}}, ConvertOptions{},
			`column "a": default "yes" is not a valid BOOL`},
		{"bad date default", []openmldb.Column{{Name: "a", Type: openmldb.TypeDate, Default: strp("99999999")}}, ConvertOptions{},
			`column "a": default "99999999" is not a valid DATE`},
		{"projected field not a column", []openmldb.Column{col("a", openmldb.TypeInt)}, ConvertOptions{Fields: []string{"a", "b"}},
			`projected field "b" is not a column of the table`},
		{"duplicate column", []openmldb.Column{col("a", openmldb.TypeInt), col("a", openmldb.TypeInt)}, ConvertOptions{},
			`table has two columns named "a"`},
		{"unknown column type", []openmldb.Column{col("a", openmldb.DataType(15))}, ConvertOptions{},
			`column "a" has type DataType(15), which the tee cannot write`},
		{"projection leaves NOT NULL column empty", []openmldb.Column{col("a", openmldb.TypeInt), {Name: "b", Type: openmldb.TypeInt, NotNull: true}},
			ConvertOptions{Fields: []string{"a"}}, `field "b": missing value for NOT NULL column`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewConverter(c.cols, c.opts)
			if err == nil || err.Error() != c.want {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

func TestProjection(t *testing.T) {
	cols := []openmldb.Column{col("a", openmldb.TypeInt), col("b", openmldb.TypeString)}
	opts := ConvertOptions{Fields: []string{"a"}}
	// Field b (declared, even with an incompatible type) and member x (undeclared) are projected away.
	row, err := convertEnv(t, cols, opts, env(`{"field":"a","type":"int32"},{"field":"b","type":"double"},{"field":"z","type":"string"}`,
		`{"a":1,"b":2.5,"z":"q","x":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(row, openmldb.Row{openmldb.Int(1), openmldb.Null()}) {
		t.Fatalf("row %+v", row)
	}
	c, err := NewConverter(cols, opts)
	if err != nil {
		t.Fatal(err)
	}
	row, err = c.ConvertJSON([]byte(`{"a":2,"b":"ignored","zz":[1]}`), row)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(row, openmldb.Row{openmldb.Int(2), openmldb.Null()}) {
		t.Fatalf("row %+v", row)
	}
}

// TestPlanPerSchema checks that records of different schemas through one Converter each get their
// own field→column mapping.
func TestPlanPerSchema(t *testing.T) {
	cols := []openmldb.Column{col("a", openmldb.TypeInt), col("b", openmldb.TypeInt)}
	c, err := NewConverter(cols, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := connect.NewParser(0)
	docs := [][]byte{
		env(`{"field":"a","type":"int32"},{"field":"b","type":"int32"}`, `{"a":1,"b":2}`),
		env(`{"field":"b","type":"int32"},{"field":"a","type":"int32"}`, `{"a":3,"b":4}`),
		env(`{"field":"b","type":"int16"}`, `{"b":5}`),
	}
	want := []openmldb.Row{
		{openmldb.Int(1), openmldb.Int(2)},
		{openmldb.Int(3), openmldb.Int(4)},
		{openmldb.Null(), openmldb.Int(5)},
	}
	var rec connect.Record
	var row openmldb.Row
	for round := range 2 {
		for i, d := range docs {
			if err := p.Parse(d, &rec); err != nil {
				t.Fatal(err)
			}
			if row, err = c.Convert(&rec, row); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(row, want[i]) {
				t.Fatalf("round %d doc %d: row %+v, want %+v", round, i, row, want[i])
			}
		}
	}
}

func TestConvertJSON(t *testing.T) {
	cols := []openmldb.Column{
		{Name: "id", Type: openmldb.TypeBigInt, NotNull: true},
		col("sm", openmldb.TypeSmallInt),
		col("i", openmldb.TypeInt),
		col("f", openmldb.TypeFloat),
		col("d", openmldb.TypeDouble),
		col("b", openmldb.TypeBool),
		col("s", openmldb.TypeString),
		col("day", openmldb.TypeDate),
		col("ts", openmldb.TypeTimestamp),
		{Name: "dflt", Type: openmldb.TypeInt, Default: strp("7")},
	}
	c, err := NewConverter(cols, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	row, err := c.ConvertJSON([]byte(`{"id":1,"sm":-2,"i":3.0,"f":4.4,"d":5.555,"b":true,"s":"x","day":"2022-04-27","ts":1651051906000}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := openmldb.Row{
		openmldb.Int(1), openmldb.Int(-2), openmldb.Int(3), openmldb.Float(float64(float32(4.4))), openmldb.Float(5.555),
		openmldb.Bool(true), openmldb.Str("x"), openmldb.Date(2022, 4, 27), openmldb.Int(1651051906000), openmldb.Int(7),
	}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row\n got %+v\nwant %+v", row, want)
	}
	// null and missing members take the column default, else NULL.
	row, err = c.ConvertJSON([]byte(`{"id":2,"dflt":null,"s":null}`), row)
	if err != nil {
		t.Fatal(err)
	}
	want = openmldb.Row{openmldb.Int(2), {}, {}, {}, {}, {}, {}, {}, {}, openmldb.Int(7)}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row\n got %+v\nwant %+v", row, want)
	}

	errCases := []struct{ name, doc, want string }{
		{"fraction into int", `{"id":1,"i":3.5}`, `field "i": value 3.5 is not an integer`},
		{"overflow smallint", `{"id":1,"sm":40000}`, `field "sm": value 40000 overflows SMALLINT`},
		{"overflow bigint", `{"id":99999999999999999999}`, `field "id": value 99999999999999999999 overflows int64`},
		{"negative timestamp", `{"id":1,"ts":-1}`, `field "ts": negative timestamp -1`},
		{"fraction into timestamp", `{"id":1,"ts":1.5}`, `field "ts": value 1.5 is not an integer`},
		{"bad date", `{"id":1,"day":"2022-02-30"}`, `field "day": value "2022-02-30" is not a date YYYY-MM-DD`},
		{"date before 1900", `{"id":1,"day":"1899-12-31"}`, `field "day": date 1899-12-31 is outside 1900-01-01..9999-12-31`},
		{"number as date", `{"id":1,"day":19109}`, `field "day": expected string, got number`},
		{"string into int", `{"id":1,"i":"3"}`, `field "i": expected int64, got string`},
		{"number into string", `{"id":1,"s":3}`, `field "s": expected string, got number`},
		{"float overflow", `{"id":1,"f":1e39}`, `field "f": value 1e39 overflows float`},
		{"unknown member", `{"id":1,"nope":3}`, `field "nope": the table has no such column`},
		{"missing not null", `{"i":1}`, `field "id": null or missing value for NOT NULL column`},
		{"null not null", `{"id":null}`, `field "id": null or missing value for NOT NULL column`},
		{"not an object", `[1]`, `expected struct, got array`},
		{"null document", `null`, `invalid null value for required struct field`},
		{"malformed", `{"id":1`, `invalid JSON at offset 7: expected ',' or '}'`},
	}
	for _, ec := range errCases {
		t.Run(ec.name, func(t *testing.T) {
			_, err := c.ConvertJSON([]byte(ec.doc), nil)
			var re *RecordError
			if !errors.As(err, &re) || err.Error() != ec.want {
				t.Fatalf("got  %v (%T)\nwant %s", err, err, ec.want)
			}
		})
	}
}

// TestSchemalessEnvelope: an envelope with "schema": null is read like a schemaless value.
func TestSchemalessEnvelope(t *testing.T) {
	row, err := convertEnv(t, []openmldb.Column{col("a", openmldb.TypeInt)}, ConvertOptions{}, []byte(`{"schema":null,"payload":{"a":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(row, openmldb.Row{openmldb.Int(1)}) {
		t.Fatalf("row %+v", row)
	}
}

func TestCivilFromDays(t *testing.T) {
	for days := int64(minDateDays - 800); days <= maxDateDays+800; days += 7 {
		y, m, d := civilFromDays(days)
		ty, tm, td := time.Unix(days*86400, 0).UTC().Date()
		if y != ty || m != int(tm) || d != td {
			t.Fatalf("day %d: got %d-%d-%d, want %d-%d-%d", days, y, m, d, ty, tm, td)
		}
	}
}

func TestAsRecordError(t *testing.T) {
	err := AsRecordError(&connect.FieldError{Field: "c2_int32", Reason: "value 3.5 is not an integer"})
	if err.Error() != `field "c2_int32": value 3.5 is not an integer` {
		t.Fatalf("got %v", err)
	}
	err = AsRecordError(&connect.SchemaError{Field: "a", Reason: "Unknown schema type: x"})
	if err.Error() != `field "a": invalid schema: Unknown schema type: x` {
		t.Fatalf("got %v", err)
	}
	if plain := errors.New("x"); AsRecordError(plain) != plain {
		t.Fatal("other errors must pass through")
	}
}

// BenchmarkSeedMessage is the per-record CPU of the tee's conversion: envelope decode with a
// warm schema cache plus conversion into a reused row.
func BenchmarkSeedMessage(b *testing.B) {
	msg := seedMessage(b)
	p := connect.NewParser(0)
	c, err := NewConverter(seedColumns(), ConvertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var rec connect.Record
	var row openmldb.Row
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(msg, &rec); err != nil {
			b.Fatal(err)
		}
		if row, err = c.Convert(&rec, row); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvertJSON is the schemaless path with the seed's payload.
func BenchmarkConvertJSON(b *testing.B) {
	payload := []byte(`{"c1_int16":1,"c2_int32":2,"c3_int64":3,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":"2022-04-27","c9_timestamp":1651051906000}`)
	c, err := NewConverter(seedColumns(), ConvertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var row openmldb.Row
	b.ReportAllocs()
	for b.Loop() {
		if row, err = c.ConvertJSON(payload, row); err != nil {
			b.Fatal(err)
		}
	}
}
