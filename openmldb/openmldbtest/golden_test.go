package openmldbtest

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// goldenDir is the client package's verbatim copy of shared/golden (only the data is shared with
// the client, never code).
const goldenDir = "../testdata/golden/"

func goldenPath(t *testing.T, name string) string {
	t.Helper()
	p := goldenDir + name
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("golden file %s: %v", name, err)
	}
	return p
}

type goldenRow struct {
	Case          string `json:"case"`
	SchemaVersion int    `json:"schema_version"`
	Schema        []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		NotNull bool   `json:"not_null"`
	} `json:"schema"`
	Values   []json.RawMessage `json:"values"`
	RowHex   string            `json:"row_hex"`
	RowFlexi string            `json:"row_hex_flexible"`
}

var goldenTypes = map[string]typepb.DataType{
	"bool": typepb.DataType_kBool, "smallint": typepb.DataType_kSmallInt, "int": typepb.DataType_kInt,
	"bigint": typepb.DataType_kBigInt, "float": typepb.DataType_kFloat, "double": typepb.DataType_kDouble,
	"string": typepb.DataType_kVarchar, "date": typepb.DataType_kDate, "timestamp": typepb.DataType_kTimestamp,
}

func readJSONL[T any](t *testing.T, name string) []T {
	t.Helper()
	f, err := os.Open(goldenPath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectCell converts a golden JSON value into the cell the decoder must produce.
func expectCell(t *testing.T, typ string, raw json.RawMessage) cell {
	t.Helper()
	if string(raw) == "null" {
		return cell{null: true}
	}
	var c cell
	switch typ {
	case "bool":
		mustJSON(t, raw, &c.b)
	case "smallint", "int":
		mustJSON(t, raw, &c.i)
	case "bigint", "timestamp":
		var s string
		mustJSON(t, raw, &s)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		c.i = v
	case "float", "double":
		var fv struct {
			F32 string `json:"f32_bits"`
			F64 string `json:"f64_bits"`
		}
		mustJSON(t, raw, &fv)
		if typ == "float" {
			b, _ := strconv.ParseUint(fv.F32, 16, 32)
			c.f = float64(math.Float32frombits(uint32(b)))
		} else {
			b, _ := strconv.ParseUint(fv.F64, 16, 64)
			c.f = math.Float64frombits(b)
		}
	case "string":
		mustJSON(t, raw, &c.s)
	case "date":
		var s string
		mustJSON(t, raw, &s)
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		c.i = int64((d.Year()-1900)<<16 | (int(d.Month())-1)<<8 | d.Day())
	default:
		t.Fatalf("unknown golden type %q", typ)
	}
	return c
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("golden value %s: %v", raw, err)
	}
}

func sameCell(a, b cell) bool {
	if a.null || b.null {
		return a.null == b.null
	}
	return a.i == b.i && a.s == b.s && a.b == b.b && math.Float64bits(a.f) == math.Float64bits(b.f)
}

func TestGoldenRowsDecode(t *testing.T) {
	rows := readJSONL[goldenRow](t, "openmldb-rows.jsonl")
	if len(rows) == 0 {
		t.Fatal("no golden rows")
	}
	for _, g := range rows {
		cols := make([]column, len(g.Schema))
		for i, s := range g.Schema {
			cols[i] = column{name: s.Name, typ: goldenTypes[s.Type], notNull: s.NotNull}
		}
		if g.SchemaVersion == 1 {
			want := make([]cell, len(g.Schema))
			for i, s := range g.Schema {
				want[i] = expectCell(t, s.Type, g.Values[i])
			}
			if got := hex.EncodeToString(encodeRow(cols, want)); got != g.RowHex {
				t.Errorf("%s: test encoder\n%s\nwant\n%s", g.Case, got, g.RowHex)
			}
		}
		forms := map[string]string{"row_hex": g.RowHex}
		if g.RowFlexi != "" {
			forms["row_hex_flexible"] = g.RowFlexi
		}
		for form, h := range forms {
			buf, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("%s %s: %v", g.Case, form, err)
			}
			cells, err := decodeRow(cols, byte(g.SchemaVersion), buf)
			if err != nil {
				t.Errorf("%s %s: decode: %v", g.Case, form, err)
				continue
			}
			for i, s := range g.Schema {
				want := expectCell(t, s.Type, g.Values[i])
				if !sameCell(cells[i], want) {
					t.Errorf("%s %s column %s: got %+v want %+v", g.Case, form, s.Name, cells[i], want)
				}
			}
			// Strictness: a wrong size header and a truncated row are refused.
			bad := append([]byte(nil), buf...)
			bad[2]++
			if _, err := decodeRow(cols, byte(g.SchemaVersion), bad); err == nil {
				t.Errorf("%s %s: size header +1 accepted", g.Case, form)
			}
			if _, err := decodeRow(cols, byte(g.SchemaVersion), buf[:len(buf)-1]); err == nil {
				t.Errorf("%s %s: truncated row accepted", g.Case, form)
			}
		}
	}
}

func TestGoldenKeyHash(t *testing.T) {
	type vec struct {
		Key    string         `json:"key"`
		Hash64 string         `json:"hash64"`
		Pid    map[string]int `json:"pid"`
	}
	vecs := readJSONL[vec](t, "openmldb-key-hash.jsonl")
	if len(vecs) == 0 {
		t.Fatal("no hash vectors")
	}
	for _, v := range vecs {
		want, err := strconv.ParseInt(v.Hash64, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := hash64(v.Key); got != want {
			t.Errorf("hash64(%q) = %d, want %d", v.Key, got, want)
		}
		for n, pid := range v.Pid {
			parts, _ := strconv.Atoi(n)
			if got := pidOf(v.Key, parts); got != uint32(pid) {
				t.Errorf("pid(%q, %d) = %d, want %d", v.Key, parts, got, pid)
			}
		}
	}
	// Reference §5.2 raw MurmurHash64A values.
	raw := map[string]uint64{"c77777": 0x382491db1cd75b18, "1": 0xa2784b1237e27ed3, "abc": 0xce08a02f9b3158b5,
		"c77777|1": 0x26b3e1c917607227, "hello world, this is longer": 0x0c1b92f179dc975e}
	for k, want := range raw {
		if got := murmur64A([]byte(k), hashSeed); got != want {
			t.Errorf("murmur64A(%q) = %#x, want %#x", k, got, want)
		}
	}
}

func TestKeyText(t *testing.T) {
	cols := []column{{name: "s", typ: typepb.DataType_kVarchar}, {name: "i", typ: typepb.DataType_kInt},
		{name: "b", typ: typepb.DataType_kBool}, {name: "d", typ: typepb.DataType_kDate}, {name: "ts", typ: typepb.DataType_kTimestamp}}
	cells := []cell{{s: ""}, {i: -5}, {b: true}, {i: 7996187}, {null: true}}
	if got, want := keyText(cols, []int{0, 1, 2, 3, 4}, cells), "!@#$%|-5|true|7996187|!N@U#L$L%"; got != want {
		t.Fatalf("keyText = %q, want %q", got, want)
	}
}
