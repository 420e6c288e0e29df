package connect

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// env wraps one field schema (without its "field" member) and one payload value into an
// envelope whose struct has the single field "f". An empty value leaves the member out.
func env(fieldSchema, value string) []byte {
	s := `{"schema":{"type":"struct","fields":[` + strings.Replace(fieldSchema, "{", `{"field":"f",`, 1) + `]},"payload":{`
	if value != "" {
		s += `"f":` + value
	}
	return []byte(s + "}}")
}

func parseOne(t *testing.T, fieldSchema, value string) (Value, error) {
	t.Helper()
	var rec Record
	if err := NewParser(0).Parse(env(fieldSchema, value), &rec); err != nil {
		return Value{}, err
	}
	return rec.Values[0], nil
}

func TestSeedMessage(t *testing.T) {
	var rec Record
	if err := NewParser(0).Parse(seedMessage(t), &rec); err != nil {
		t.Fatal(err)
	}
	want := []Value{
		{Kind: KindInt, Int: 1},
		{Kind: KindInt, Int: 2},
		{Kind: KindInt, Int: 3},
		{Kind: KindFloat, Float: float64(float32(4.4))},
		{Kind: KindFloat, Float: 5.555},
		{Kind: KindBool, Bool: true},
		{Kind: KindString, Str: "c77777"},
		{Kind: KindInt, Int: 19109},
		{Kind: KindInt, Int: 1651051906000},
	}
	if !reflect.DeepEqual(rec.Values, want) {
		t.Fatalf("values\n got %+v\nwant %+v", rec.Values, want)
	}
	s := rec.Schema
	if s.Name != "foobar" || s.Optional || len(s.Fields) != 9 {
		t.Fatalf("schema %+v", s)
	}
	if f := s.Fields[7]; f.Field != "c8_date" || f.Type != TypeInt64 || f.Logical != LogicalDate || !f.Optional {
		t.Fatalf("c8_date schema %+v", f)
	}
	if f := s.Fields[8]; f.Logical != LogicalTimestamp {
		t.Fatalf("c9_timestamp schema %+v", f)
	}
	if len(rec.Extra) != 0 || rec.Null || string(rec.Payload[:12]) != `{"c1_int16":` {
		t.Fatalf("record %+v", rec)
	}
}

func TestTypes(t *testing.T) {
	cases := []struct {
		name, schema, value string
		want                Value
	}{
		{"boolean true", `{"type":"boolean"}`, `true`, Value{Kind: KindBool, Bool: true}},
		{"boolean false", `{"type":"boolean"}`, `false`, Value{Kind: KindBool}},
		{"int8", `{"type":"int8"}`, `-128`, Value{Kind: KindInt, Int: -128}},
		{"int16", `{"type":"int16"}`, `32767`, Value{Kind: KindInt, Int: 32767}},
		{"int32", `{"type":"int32"}`, `-2147483648`, Value{Kind: KindInt, Int: math.MinInt32}},
		{"int64 max", `{"type":"int64"}`, `9223372036854775807`, Value{Kind: KindInt, Int: math.MaxInt64}},
		{"int64 min", `{"type":"int64"}`, `-9223372036854775808`, Value{Kind: KindInt, Int: math.MinInt64}},
		{"int whole fraction", `{"type":"int32"}`, `3.0`, Value{Kind: KindInt, Int: 3}},
		{"int exponent", `{"type":"int64"}`, `12e2`, Value{Kind: KindInt, Int: 1200}},
		{"float rounds to float32", `{"type":"float"}`, `4.4`, Value{Kind: KindFloat, Float: float64(float32(4.4))}},
		{"float integer", `{"type":"float"}`, `7`, Value{Kind: KindFloat, Float: 7}},
		{"double", `{"type":"double"}`, `-5.555e-3`, Value{Kind: KindFloat, Float: -5.555e-3}},
		{"string", `{"type":"string"}`, `"a\"b\\c\u00e9\ud83d\ude00"`, Value{Kind: KindString, Str: "a\"b\\cé😀"}},
		{"string empty", `{"type":"string"}`, `""`, Value{Kind: KindString, Str: ""}},
		{"bytes", `{"type":"bytes"}`, `"AQID"`, Value{Kind: KindBytes, Str: "\x01\x02\x03"}},
		{"date int32", `{"type":"int32","name":"org.apache.kafka.connect.data.Date"}`, `19109`, Value{Kind: KindInt, Int: 19109}},
		{"date int64", `{"type":"int64","name":"org.apache.kafka.connect.data.Date"}`, `-1`, Value{Kind: KindInt, Int: -1}},
		{"time", `{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`, `86400000`, Value{Kind: KindInt, Int: 86400000}},
		{"timestamp", `{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `1651051906000`, Value{Kind: KindInt, Int: 1651051906000}},
		{"decimal base64", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}`, `"BNI="`, Value{Kind: KindDecimal, Int: 1234, Scale: 2}},
		{"decimal negative", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}`, `"/y4="`, Value{Kind: KindDecimal, Int: -210, Scale: 2}},
		{"decimal number keeps its scale", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}`, `-12.500`, Value{Kind: KindDecimal, Int: -12500, Scale: 3}},
		{"decimal number exponent", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0"}}`, `15e3`, Value{Kind: KindDecimal, Int: 15, Scale: -3}},
		{"array", `{"type":"array","items":{"type":"int32"}}`, `[1, 2]`, Value{Kind: KindArray, Elems: []Value{{Kind: KindInt, Int: 1}, {Kind: KindInt, Int: 2}}}},
		{"array empty", `{"type":"array","items":{"type":"int32"}}`, `[]`, Value{Kind: KindArray, Elems: []Value{}}},
		{"map string keys", `{"type":"map","keys":{"type":"string"},"values":{"type":"int64"}}`, `{"a":1}`,
			Value{Kind: KindMap, Elems: []Value{{Kind: KindString, Str: "a"}, {Kind: KindInt, Int: 1}}}},
		{"map int keys", `{"type":"map","keys":{"type":"int32"},"values":{"type":"boolean"}}`, `[[7,true]]`,
			Value{Kind: KindMap, Elems: []Value{{Kind: KindInt, Int: 7}, {Kind: KindBool, Bool: true}}}},
		{"struct", `{"type":"struct","fields":[{"field":"a","type":"string"},{"field":"b","type":"int8","optional":true}]}`, `{"a":"x"}`,
			Value{Kind: KindStruct, Elems: []Value{{Kind: KindString, Str: "x"}, {}}}},
		{"optional null", `{"type":"int32","optional":true}`, `null`, Value{}},
		{"optional missing", `{"type":"string","optional":true}`, ``, Value{}},
		{"default on null", `{"type":"int32","default":42}`, `null`, Value{Kind: KindInt, Int: 42}},
		{"default on missing", `{"type":"string","optional":true,"default":"d"}`, ``, Value{Kind: KindString, Str: "d"}},
		{"default date", `{"type":"int32","name":"org.apache.kafka.connect.data.Date","default":1}`, ``, Value{Kind: KindInt, Int: 1}},
		{"null default is no default", `{"type":"int32","optional":true,"default":null}`, ``, Value{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseOne(t, c.schema, c.value)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestBigDecimal(t *testing.T) {
	const dec = `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"3"}}`
	// 2^70 = 0x40 followed by 8 zero bytes after a leading 0x00? No: 0x400000000000000000 (9 bytes).
	v, err := parseOne(t, dec, `"QAAAAAAAAAAA"`)
	if err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).Lsh(big.NewInt(1), 70)
	if v.Kind != KindDecimal || v.Scale != 3 || v.Big == nil || v.Unscaled().Cmp(want) != 0 {
		t.Fatalf("got %+v, want unscaled %s", v, want)
	}
	v, err = parseOne(t, dec, `-123456789012345678901.5`)
	if err != nil {
		t.Fatal(err)
	}
	want, _ = new(big.Int).SetString("-1234567890123456789015", 10)
	if v.Scale != 1 || v.Unscaled().Cmp(want) != 0 {
		t.Fatalf("got %+v, want unscaled %s", v, want)
	}
	// Nine bytes that still fit in int64 after sign extension are stored in Int.
	v, err = parseOne(t, dec, `"//////////8="`) // ff×8 then ff → -1
	if err != nil {
		t.Fatal(err)
	}
	if v.Big != nil || v.Int != -1 {
		t.Fatalf("got %+v, want Int -1", v)
	}
}

func TestValueErrors(t *testing.T) {
	cases := []struct{ name, schema, value, want string }{
		{"fraction into int32", `{"type":"int32"}`, `3.5`, `field "f": value 3.5 is not an integer`},
		{"tiny fraction", `{"type":"int64"}`, `3.0000000000000001`, `field "f": value 3.0000000000000001 is not an integer`},
		{"int8 overflow", `{"type":"int8"}`, `128`, `field "f": value 128 overflows int8`},
		{"int16 overflow", `{"type":"int16"}`, `-32769`, `field "f": value -32769 overflows int16`},
		{"int32 overflow", `{"type":"int32"}`, `2147483648`, `field "f": value 2147483648 overflows int32`},
		{"int64 overflow", `{"type":"int64"}`, `9223372036854775808`, `field "f": value 9223372036854775808 overflows int64`},
		{"int64 overflow exponent", `{"type":"int64"}`, `1e19`, `field "f": value 1e19 overflows int64`},
		{"float overflow", `{"type":"float"}`, `3.5e38`, `field "f": value 3.5e38 overflows float`},
		{"double overflow", `{"type":"double"}`, `1e309`, `field "f": value 1e309 overflows double`},
		{"string for int", `{"type":"int32"}`, `"3"`, `field "f": expected int32, got string`},
		{"number for boolean", `{"type":"boolean"}`, `1`, `field "f": expected boolean, got number`},
		{"number for string", `{"type":"string"}`, `12`, `field "f": expected string, got number`},
		{"object for double", `{"type":"double"}`, `{}`, `field "f": expected double, got object`},
		{"required null", `{"type":"int32"}`, `null`, `field "f": invalid null value for required int32 field`},
		{"required missing", `{"type":"string","optional":false}`, ``, `field "f": invalid null value for required string field`},
		{"optional must be literal true", `{"type":"string","optional":"true"}`, ``, `field "f": invalid null value for required string field`},
		{"bad base64", `{"type":"bytes"}`, `"!!"`, `field "f": invalid base64 in bytes value`},
		{"time above a day", `{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`, `86400001`, `field "f": time 86400001 is outside 0..86400000 ms of day`},
		{"time negative", `{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`, `-1`, `field "f": time -1 is outside 0..86400000 ms of day`},
		{"date beyond int32", `{"type":"int64","name":"org.apache.kafka.connect.data.Date"}`, `2147483648`, `field "f": date 2147483648 days overflows int32`},
		{"timestamp fraction", `{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `1.5`, `field "f": value 1.5 is not an integer`},
		{"timestamp string", `{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `"2022-04-27"`, `field "f": expected int64, got string`},
		{"decimal wrong kind", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}`, `true`, `field "f": expected Decimal (base64 string or number), got boolean`},
		{"decimal empty bytes", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}`, `""`, `field "f": empty Decimal bytes`},
		{"array element", `{"type":"array","items":{"type":"int8"}}`, `[1,300]`, `field "f[1]": value 300 overflows int8`},
		{"map value", `{"type":"map","keys":{"type":"string"},"values":{"type":"int8"}}`, `{"k":"v"}`, `field "f[\"k\"]": expected int8, got string`},
		{"map pair shape", `{"type":"map","keys":{"type":"int8"},"values":{"type":"int8"}}`, `[[1]]`, `field "f[0]": map entry must be a [key, value] array`},
		{"map wrong shape", `{"type":"map","keys":{"type":"int8"},"values":{"type":"int8"}}`, `{}`, `field "f": expected map (array of [key, value] pairs), got object`},
		{"nested struct", `{"type":"struct","fields":[{"field":"a","type":"boolean"}]}`, `{"a":"yes"}`, `field "f.a": expected boolean, got string`},
		{"nested missing", `{"type":"struct","fields":[{"field":"a","type":"boolean"}]}`, `{}`, `field "f.a": invalid null value for required boolean field`},
		{"invalid utf8", `{"type":"string"}`, "\"\xff\"", `field "f": invalid UTF-8 in string`},
		{"bad escape", `{"type":"string"}`, `"\x"`, `field "f": invalid JSON at offset 85: invalid escape \x`},
		{"malformed number", `{"type":"int32"}`, `-`, `field "f": invalid JSON at offset 83: invalid number`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseOne(t, c.schema, c.value)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v (%T), want *FieldError %q", err, err, c.want)
			}
			if err.Error() != c.want {
				t.Fatalf("got  %q\nwant %q", err.Error(), c.want)
			}
		})
	}
}

func TestDuplicateMember(t *testing.T) {
	var rec Record
	err := NewParser(0).Parse([]byte(`{"schema":{"type":"struct","fields":[{"field":"a","type":"int8"}]},"payload":{"a":1,"a":2}}`), &rec)
	if err == nil || err.Error() != `field "a": duplicate member` {
		t.Fatalf("got %v", err)
	}
}

// A value may start with a UTF-8 byte order mark, as JsonConverter (Jackson) allows.
func TestByteOrderMarkIsSkipped(t *testing.T) {
	doc := "\xEF\xBB\xBF" + `{"schema":{"type":"struct","fields":[{"field":"a","type":"int8"}]},"payload":{"a":1}}`
	var rec Record
	if err := NewParser(0).Parse([]byte(doc), &rec); err != nil {
		t.Fatalf("envelope after a BOM: %v", err)
	}
	s := rec.Schema
	if err := ParsePayload(s, []byte("\xEF\xBB\xBF"+`{"a":2}`), &rec); err != nil {
		t.Fatalf("schemaless payload after a BOM: %v", err)
	}
}

func TestEnvelopeErrors(t *testing.T) {
	const schema = `{"type":"struct","fields":[{"field":"a","type":"int8"}]}`
	cases := []struct{ name, doc, want string }{
		{"array", `[1]`, errEnvelope},
		{"scalar", `42`, errEnvelope},
		{"null", `null`, errEnvelope},
		{"not JSON", `hello world`, `invalid JSON at offset 0: unexpected character 'h'`},
		{"empty", ``, "value is empty: " + errEnvelope},
		{"two values", `42 43`, `invalid JSON at offset 3: trailing data after the value`},
		{"empty object", `{}`, errEnvelope},
		{"missing payload", `{"schema":` + schema + `}`, errEnvelope},
		{"missing schema", `{"payload":{"a":1}}`, errEnvelope},
		{"extra key", `{"schema":` + schema + `,"payload":{"a":1},"x":1}`, errEnvelope},
		{"duplicate schema", `{"schema":null,"schema":null,"payload":{}}`, errEnvelope},
		{"trailing data", `{"schema":null,"payload":{}} x`, `invalid JSON at offset 29: trailing data after the envelope`},
		{"truncated", `{"schema":` + schema + `,"payload":{"a":1`, `invalid JSON at offset 83: expected ',' or '}'`},
		{"payload not object", `{"schema":` + schema + `,"payload":[1]}`, `expected struct, got array`},
		{"payload null for required struct", `{"schema":` + schema + `,"payload":null}`, `invalid null value for required struct field`},
		{"top-level not struct", `{"schema":{"type":"int32"},"payload":1}`, `schema: top-level schema must be a struct, got int32`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec Record
			err := NewParser(0).Parse([]byte(c.doc), &rec)
			if err == nil || err.Error() != c.want {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

func TestSchemaErrors(t *testing.T) {
	cases := []struct{ name, schema, want string }{
		{"no type", `{"fields":[]}`, `schema: Schema must contain 'type' field`},
		{"type not a string", `{"type":1}`, `schema: Schema must contain 'type' field`},
		{"unknown type", `{"type":"struct","fields":[{"field":"a","type":"int128"}]}`, `schema field "a": Unknown schema type: int128`},
		{"fields not array", `{"type":"struct","fields":{}}`, `schema: Struct schema's "fields" argument is not an array`},
		{"field without name", `{"type":"struct","fields":[{"type":"int8"}]}`, `schema: Struct schema's field 0 has no "field" name`},
		{"duplicate field", `{"type":"struct","fields":[{"field":"a","type":"int8"},{"field":"a","type":"int8"}]}`, `schema field "a": duplicate field name`},
		{"parameters not strings", `{"type":"struct","fields":[{"field":"a","type":"int8","parameters":{"x":1}}]}`, `schema field "a": Schema parameters must have string values`},
		{"decimal without scale", `{"type":"struct","fields":[{"field":"d","type":"bytes","name":"org.apache.kafka.connect.data.Decimal"}]}`, `schema field "d": Invalid Decimal schema: scale parameter not found.`},
		{"decimal on int", `{"type":"struct","fields":[{"field":"d","type":"int64","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"1"}}]}`, `schema field "d": logical type org.apache.kafka.connect.data.Decimal needs type bytes, got int64`},
		{"date on string", `{"type":"struct","fields":[{"field":"d","type":"string","name":"org.apache.kafka.connect.data.Date"}]}`, `schema field "d": logical type org.apache.kafka.connect.data.Date needs type int32 or int64, got string`},
		{"array without items", `{"type":"struct","fields":[{"field":"a","type":"array"}]}`, `schema field "a": Array schema did not specify the element type`},
		{"map without values", `{"type":"struct","fields":[{"field":"m","type":"map","keys":{"type":"string"}}]}`, `schema field "m": Map schema did not specify the key or value type`},
		{"bad item", `{"type":"struct","fields":[{"field":"a","type":"array","items":{"type":"x"}}]}`, `schema field "a[items]": Unknown schema type: x`},
		{"bad default", `{"type":"struct","fields":[{"field":"a","type":"int8","default":1000}]}`, `schema field "a": invalid default value: value 1000 overflows int8`},
		{"version not int", `{"type":"struct","version":"1","fields":[]}`, `schema: Schema version must be an integer, got "1"`},
		{"malformed", `{"type":"struct","fields":[}`, `schema: invalid JSON at offset 37: unexpected character '}'`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec Record
			err := NewParser(0).Parse([]byte(`{"schema":`+c.schema+`,"payload":{}}`), &rec)
			if err == nil || err.Error() != c.want {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

func TestSchemaAttributes(t *testing.T) {
	s, err := NewParser(0).ParseSchema([]byte(`{"type":"struct","name":"n","version":3,"doc":"d","parameters":{"k":"v"},"fields":[
		{"field":"d","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "n" || s.Version != 3 || s.Doc != "d" || s.Parameters["k"] != "v" {
		t.Fatalf("schema %+v", s)
	}
	if d := s.Fields[0]; d.Logical != LogicalDecimal || d.Scale != 2 || d.Precision != 10 || s.FieldIndex("d") != 0 || s.FieldIndex("x") != -1 {
		t.Fatalf("decimal field %+v", d)
	}
}

func TestSchemaCache(t *testing.T) {
	p := NewParser(2)
	msg := seedMessage(t)
	var a, b Record
	if err := p.Parse(msg, &a); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(msg, &b); err != nil {
		t.Fatal(err)
	}
	if a.Schema != b.Schema {
		t.Fatal("same schema text gave two schemas")
	}
	if st := p.Stats(); st.Misses != 1 || st.Hits != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v, want 1 miss, 1 hit, 1 entry", st)
	}
	// Another schema, then the first again: found in the map, not re-parsed.
	other := env(`{"type":"int8"}`, `1`)
	if err := p.Parse(other, &b); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(msg, &b); err != nil {
		t.Fatal(err)
	}
	if a.Schema != b.Schema {
		t.Fatal("schema re-parsed after a different one")
	}
	if st := p.Stats(); st.Misses != 2 || st.Hits != 2 || st.Entries != 2 {
		t.Fatalf("stats %+v, want 2 misses, 2 hits, 2 entries", st)
	}
	// The cache is bounded.
	if err := p.Parse(env(`{"type":"int16"}`, `1`), &b); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Entries != 2 || st.Misses != 3 {
		t.Fatalf("stats %+v, want 2 entries after 3 schemas", st)
	}
	// A refused schema is cached too, and its error can be annotated without harm.
	bad := []byte(`{"schema":{"type":"int32"},"payload":1}`)
	for range 2 {
		err := p.Parse(bad, &b)
		var se *SchemaError
		if !errors.As(err, &se) || err.Error() != "schema: top-level schema must be a struct, got int32" {
			t.Fatalf("got %v", err)
		}
		se.Field = "scribbled"
	}
	if st := p.Stats(); st.Misses != 4 {
		t.Fatalf("stats %+v, want the refused schema parsed once", st)
	}
}

func TestSchemalessEnvelope(t *testing.T) {
	var rec Record
	if err := NewParser(0).Parse([]byte(`{"payload": {"a": 1, "b": [true]} , "schema": null}`), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Schema != nil || rec.Values != nil && len(rec.Values) != 0 || string(rec.Payload) != `{"a": 1, "b": [true]}` {
		t.Fatalf("record %+v", rec)
	}
}

func TestPayloadBeforeSchema(t *testing.T) {
	var rec Record
	err := NewParser(0).Parse([]byte(`{"payload":{"b":"x","a":5},"schema":{"type":"struct","fields":[{"field":"a","type":"int8"},{"field":"b","type":"string"}]}}`), &rec)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Values[0].Int != 5 || rec.Values[1].Str != "x" {
		t.Fatalf("values %+v", rec.Values)
	}
}

func TestExtraMembers(t *testing.T) {
	var rec Record
	err := NewParser(0).Parse([]byte(`{"schema":{"type":"struct","fields":[{"field":"a","type":"int8"}]},"payload":{"x":{"deep":[1,{"y":null}]},"a":1,"z\u0021":2}}`), &rec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec.Extra, []string{"x", "z!"}) || rec.Values[0].Int != 1 {
		t.Fatalf("record %+v", rec)
	}
}

func TestOptionalNullPayload(t *testing.T) {
	var rec Record
	if err := NewParser(0).Parse([]byte(`{"schema":{"type":"struct","optional":true,"fields":[]},"payload":null}`), &rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Null {
		t.Fatal("want Null")
	}
}

func TestParsePayload(t *testing.T) {
	s, err := NewStruct(&Schema{Type: TypeInt16, Field: "a"}, &Schema{Type: TypeString, Field: "b", Optional: true})
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := ParsePayload(s, []byte(` {"a": 7} `), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Values[0].Int != 7 || rec.Values[1].Kind != KindNull {
		t.Fatalf("values %+v", rec.Values)
	}
	if err := ParsePayload(s, []byte(`{"a": 7} 1`), &rec); err == nil || err.Error() != "invalid JSON at offset 9: trailing data after the payload" {
		t.Fatalf("got %v", err)
	}
	if _, err := NewStruct(&Schema{Type: TypeInt8, Field: "a"}, &Schema{Type: TypeInt8, Field: "a"}); err == nil {
		t.Fatal("duplicate field accepted")
	}
}

// TestRecordReuse checks that reusing a Record does not leak values between records.
func TestRecordReuse(t *testing.T) {
	p := NewParser(0)
	var rec Record
	if _, err := parseOne(t, `{"type":"int8","optional":true}`, `5`); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(env(`{"type":"int8","optional":true}`, `5`), &rec); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(env(`{"type":"int8","optional":true}`, ``), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Values[0].Kind != KindNull {
		t.Fatalf("stale value %+v", rec.Values[0])
	}
}

func FuzzParse(f *testing.F) {
	f.Add(seedMessage(f))
	f.Add(env(`{"type":"map","keys":{"type":"int8"},"values":{"type":"string"}}`, `[[1,"a"]]`))
	f.Add(env(`{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}`, `1.5e3`))
	f.Add([]byte(`{"schema":null,"payload":{"a":"\ud800"}}`))
	p := NewParser(4)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec Record
		if err := p.Parse(data, &rec); err == nil && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
	})
}
