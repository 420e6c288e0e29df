package e2e

import (
	"strings"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// allTypesSchema declares every JsonConverter primitive and logical type the tee can store, a
// required field, optional ones, and defaults (one on an optional field, one on a required one).
const allTypesSchema = `{"type":"struct","name":"alltypes","optional":false,"fields":[` +
	`{"field":"i8","type":"int8","optional":false},` +
	`{"field":"i16","type":"int16","optional":true},` +
	`{"field":"i32","type":"int32","optional":true},` +
	`{"field":"i64","type":"int64","optional":true},` +
	`{"field":"f32","type":"float","optional":true},` +
	`{"field":"f64","type":"double","optional":true},` +
	`{"field":"flag","type":"boolean","optional":true},` +
	`{"field":"text","type":"string","optional":true},` +
	`{"field":"day","type":"int32","name":"org.apache.kafka.connect.data.Date","version":1,"optional":true},` +
	`{"field":"tod","type":"int32","name":"org.apache.kafka.connect.data.Time","version":1,"optional":true},` +
	`{"field":"ts","type":"int64","name":"org.apache.kafka.connect.data.Timestamp","version":1,"optional":true},` +
	`{"field":"price","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","version":1,"optional":true,"parameters":{"scale":"2","connect.decimal.precision":"10"}},` +
	`{"field":"opt_default","type":"int32","optional":true,"default":42},` +
	`{"field":"req_default","type":"int64","optional":false,"default":7}]}`

// TestTeeAllConnectTypes auto-creates a table from a record carrying every type and reads both
// records back with `scan`: values exact (int64 beyond 2^53, Date days → date, Time → ms of day,
// Timestamp ms, Decimal base64 unscaled 12345 scale 2 → 123.45), NULL for absent or null optional
// fields, and schema defaults for absent or null fields that have one.
func TestTeeAllConnectTypes(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newTeeEnv(t, teeOptions{topics: []string{"alltypes"}, sinksYAML: "  - topics: [alltypes]\n    auto_create: true\n"})
	full := `{"schema":` + allTypesSchema + `,"payload":{"i8":-8,"i16":32767,"i32":-2147483648,"i64":9007199254740993,` +
		`"f32":1.5,"f64":2.25e10,"flag":false,"text":"h\u00e9llo \"q\"","day":19109,"tod":3723004,"ts":1651051906123,` +
		`"price":"MDk=","opt_default":5,"req_default":9}}`
	sparse := `{"schema":` + allTypesSchema + `,"payload":{"i8":1,"i16":null,"text":null,"req_default":null}}`
	// -p 0 keeps both in one partition so scan order is produce order.
	if _, err := e.kcatProduce(t, "alltypes", full+"\n", "-p", "0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kcatProduce(t, "alltypes", sparse+"\n", "-p", "0"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"i8":-8,"i16":32767,"i32":-2147483648,"i64":9007199254740993,"f32":1.5,"f64":2.25e+10,"flag":false,"text":"héllo \"q\"","day":"2022-04-27","tod":3723004,"ts":1651051906123,"price":123.45,"opt_default":5,"req_default":9}`,
		`{"i8":1,"i16":null,"i32":null,"i64":null,"f32":null,"f64":null,"flag":null,"text":null,"day":null,"tod":null,"ts":null,"price":null,"opt_default":42,"req_default":7}`,
	}
	got := e.scan(t, "alltypes")
	if ok, diff := sameLines(want, got); !ok {
		t.Fatalf("scan kafka_test.alltypes: %s\ngot:\n%s", diff, strings.Join(got, "\n"))
	}
	// The auto-created columns follow the mapping, NOT NULL exactly for required fields.
	tbl, err := e.store.Table(teeDB, "alltypes")
	if err != nil {
		t.Fatal(err)
	}
	wantCols := []openmldb.Column{
		{Name: "i8", Type: openmldb.TypeSmallInt, NotNull: true}, {Name: "i16", Type: openmldb.TypeSmallInt},
		{Name: "i32", Type: openmldb.TypeInt}, {Name: "i64", Type: openmldb.TypeBigInt},
		{Name: "f32", Type: openmldb.TypeFloat}, {Name: "f64", Type: openmldb.TypeDouble},
		{Name: "flag", Type: openmldb.TypeBool}, {Name: "text", Type: openmldb.TypeString},
		{Name: "day", Type: openmldb.TypeDate}, {Name: "tod", Type: openmldb.TypeInt},
		{Name: "ts", Type: openmldb.TypeTimestamp}, {Name: "price", Type: openmldb.TypeDouble},
		{Name: "opt_default", Type: openmldb.TypeInt}, {Name: "req_default", Type: openmldb.TypeBigInt, NotNull: true},
	}
	if len(tbl.Columns) != len(wantCols) {
		t.Fatalf("table has %d columns, want %d", len(tbl.Columns), len(wantCols))
	}
	for i, w := range wantCols {
		c := tbl.Columns[i]
		if c.Name != w.Name || c.Type != w.Type || c.NotNull != w.NotNull {
			t.Errorf("column %d = %s %v notnull=%v, want %s %v notnull=%v", i, c.Name, c.Type, c.NotNull, w.Name, w.Type, w.NotNull)
		}
	}
}

// TestTeeSchemalessJSON is a `format: json` sink (JsonConverter with schemas.enable=false) against
// a table created beforehand: plain JSON objects are read against the table's columns, an absent
// nullable column is NULL, and an object missing the NOT NULL column is refused with nothing
// reaching the broker.
func TestTeeSchemalessJSON(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newTeeEnv(t, teeOptions{
		topics: []string{"plain"},
		tables: []openmldb.TableSpec{{Name: "plain", Columns: []openmldb.Column{
			{Name: "id", Type: openmldb.TypeBigInt, NotNull: true},
			{Name: "name", Type: openmldb.TypeString},
			{Name: "day", Type: openmldb.TypeDate},
			{Name: "ts", Type: openmldb.TypeTimestamp},
			{Name: "score", Type: openmldb.TypeDouble},
			{Name: "ok", Type: openmldb.TypeBool},
		}}},
		sinksYAML: "  - topics: [plain]\n    format: json\n",
	})
	in := `{"id":7,"name":"x","day":"2022-04-27","ts":1651051906000,"score":1.25,"ok":true}` + "\n" + `{"id":8}` + "\n"
	if _, err := e.kcatProduce(t, "plain", in, "-p", "0"); err != nil {
		t.Fatal(err)
	}
	res, err := e.kcatProduce(t, "plain", `{"name":"no id"}`+"\n")
	if err == nil || !strings.Contains(res.Stderr, kcatInvalidRecord) {
		t.Fatalf("object without the NOT NULL id: kcat err %v, stderr %q; want %q", err, res.Stderr, kcatInvalidRecord)
	}
	want := []string{
		`{"id":7,"name":"x","day":"2022-04-27","ts":1651051906000,"score":1.25,"ok":true}`,
		`{"id":8,"name":null,"day":null,"ts":null,"score":null,"ok":null}`,
	}
	if ok, diff := sameLines(want, e.scan(t, "plain")); !ok {
		t.Fatalf("scan kafka_test.plain: %s", diff)
	}
	if got := e.storedValues(t, "plain"); len(got) != 2 {
		t.Fatalf("topic plain holds %d records, want the 2 valid ones: %q", len(got), got)
	}
}

// sameLines compares scan output with the expected rows in any order (scan walks partitions of
// the table, not produce order).
func sameLines(want, got []string) (bool, string) {
	return harness.SameMultiset(want, got)
}
