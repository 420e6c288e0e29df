package tee

import (
	"errors"
	"reflect"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

func parseSchema(t *testing.T, fields string) *connect.Schema {
	t.Helper()
	s, err := connect.NewParser(0).ParseSchema([]byte(`{"type":"struct","fields":[` + fields + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestColumnsFromSchemaTypes(t *testing.T) {
	s := parseSchema(t, `
		{"field":"i8","type":"int8","default":-1},
		{"field":"i16","type":"int16","optional":true},
		{"field":"i32","type":"int32","default":7},
		{"field":"i64","type":"int64","optional":true,"default":9007199254740993},
		{"field":"f","type":"float","default":4.4},
		{"field":"d","type":"double","default":5.555},
		{"field":"b","type":"boolean","default":true},
		{"field":"bf","type":"boolean","optional":true,"default":false},
		{"field":"s","type":"string","default":"a b"},
		{"field":"day","type":"int32","name":"org.apache.kafka.connect.data.Date","default":19109},
		{"field":"ts","type":"int64","name":"org.apache.kafka.connect.data.Timestamp","optional":true,"default":1651051906000},
		{"field":"tm","type":"int32","name":"org.apache.kafka.connect.data.Time","default":3600000},
		{"field":"dec","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"15"},"default":"BNI="}`)
	got, err := ColumnsFromSchema(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []openmldb.Column{
		{Name: "i8", Type: openmldb.TypeSmallInt, NotNull: true, Default: strp("-1")},
		{Name: "i16", Type: openmldb.TypeSmallInt},
		{Name: "i32", Type: openmldb.TypeInt, NotNull: true, Default: strp("7")},
		{Name: "i64", Type: openmldb.TypeBigInt, Default: strp("9007199254740993")},
		{Name: "f", Type: openmldb.TypeFloat, NotNull: true, Default: strp("4.4")},
		{Name: "d", Type: openmldb.TypeDouble, NotNull: true, Default: strp("5.555")},
		{Name: "b", Type: openmldb.TypeBool, NotNull: true, Default: strp("true")},
		{Name: "bf", Type: openmldb.TypeBool, Default: strp("false")},
		{Name: "s", Type: openmldb.TypeString, NotNull: true, Default: strp("a b")},
		{Name: "day", Type: openmldb.TypeDate, NotNull: true, Default: strp("7996187")}, // 2022-04-27 packed = 0x7a031b
		{Name: "ts", Type: openmldb.TypeTimestamp, Default: strp("1651051906000")},
		{Name: "tm", Type: openmldb.TypeInt, NotNull: true, Default: strp("3600000")},
		{Name: "dec", Type: openmldb.TypeDouble, NotNull: true, Default: strp("12.34")},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				g, w := "<nil>", "<nil>"
				if got[i].Default != nil {
					g = *got[i].Default
				}
				if want[i].Default != nil {
					w = *want[i].Default
				}
				t.Errorf("column %d: got %+v (default %s), want %+v (default %s)", i, got[i], g, want[i], w)
			}
		}
	}
	// The defaults round-trip: a converter for these columns reads every one of them back.
	c, err := NewConverter(got, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	row, err := c.ConvertJSON([]byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantRow := openmldb.Row{
		openmldb.Int(-1), {}, openmldb.Int(7), openmldb.Int(9007199254740993), openmldb.Float(float64(float32(4.4))),
		openmldb.Float(5.555), openmldb.Bool(true), openmldb.Bool(false), openmldb.Str("a b"), openmldb.Date(2022, 4, 27),
		openmldb.Int(1651051906000), openmldb.Int(3600000), openmldb.Float(12.34),
	}
	if !reflect.DeepEqual(row, wantRow) {
		t.Fatalf("defaults read back\n got %+v\nwant %+v", row, wantRow)
	}
}

func TestColumnsFromSchemaErrors(t *testing.T) {
	const dec = `"type":"bytes","name":"org.apache.kafka.connect.data.Decimal"`
	cases := []struct{ name, fields, want string }{
		{"bytes", `{"field":"x","type":"bytes"}`, `field "x": type bytes has no OpenMLDB column type`},
		{"array", `{"field":"x","type":"array","items":{"type":"int8"}}`, `field "x": type array has no OpenMLDB column type`},
		{"map", `{"field":"x","type":"map","keys":{"type":"string"},"values":{"type":"int8"}}`, `field "x": type map has no OpenMLDB column type`},
		{"struct", `{"field":"x","type":"struct","fields":[]}`, `field "x": type struct has no OpenMLDB column type`},
		{"decimal without precision", `{"field":"x",` + dec + `,"parameters":{"scale":"2"}}`,
			`field "x": Decimal needs parameter connect.decimal.precision of at most 15 to be stored losslessly as DOUBLE`},
		{"decimal precision 16", `{"field":"x",` + dec + `,"parameters":{"scale":"2","connect.decimal.precision":"16"}}`,
			`field "x": Decimal needs parameter connect.decimal.precision of at most 15 to be stored losslessly as DOUBLE`},
		{"date default out of range", `{"field":"x","type":"int32","name":"org.apache.kafka.connect.data.Date","default":-30000}`,
			`field "x": default: date -30000 days since 1970-01-01 is outside 1900-01-01..9999-12-31`},
		{"negative timestamp default", `{"field":"x","type":"int64","name":"org.apache.kafka.connect.data.Timestamp","default":-1}`,
			`field "x": default: negative timestamp -1`},
		{"no fields", ``, `the struct schema has no fields`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ColumnsFromSchema(parseSchema(t, c.fields))
			var re *RecordError
			if !errors.As(err, &re) || err.Error() != c.want {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
	if _, err := ColumnsFromSchema(nil); err == nil {
		t.Fatal("nil schema accepted")
	}
}
