package openmldb

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goldenDir holds a verbatim copy of the project's shared/golden vectors (bytes produced by
// OpenMLDB's own code); TestGoldenCopyIsCurrent checks it against shared/ when that is beside the
// checkout.
const goldenDir = "testdata/golden/"

type goldenRow struct {
	Case          string `json:"case"`
	SchemaVersion uint8  `json:"schema_version"`
	Schema        []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		NotNull bool   `json:"not_null"`
	} `json:"schema"`
	Values         []json.RawMessage `json:"values"`
	RowHex         string            `json:"row_hex"`
	RowHexFlexible string            `json:"row_hex_flexible"`
}

var goldenTypes = map[string]DataType{
	"bool": TypeBool, "smallint": TypeSmallInt, "int": TypeInt, "bigint": TypeBigInt, "float": TypeFloat,
	"double": TypeDouble, "string": TypeVarchar, "date": TypeDate, "timestamp": TypeTimestamp,
}

func readJSONL[T any](t *testing.T, name string) []T {
	t.Helper()
	f, err := os.Open(goldenDir + name)
	if err != nil {
		t.Fatalf("golden file: %v", err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
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

// goldenValue converts the golden JSON notation into a Value for the column type.
func goldenValue(t *testing.T, typ DataType, raw json.RawMessage) Value {
	t.Helper()
	if string(raw) == "null" {
		return Null()
	}
	switch typ {
	case TypeBool:
		var b bool
		mustJSON(t, raw, &b)
		return Bool(b)
	case TypeSmallInt, TypeInt:
		var n int64
		mustJSON(t, raw, &n)
		return Int(n)
	case TypeBigInt, TypeTimestamp:
		var s string
		mustJSON(t, raw, &s)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return Int(n)
	case TypeFloat, TypeDouble:
		var f struct {
			F32 string `json:"f32_bits"`
			F64 string `json:"f64_bits"`
		}
		mustJSON(t, raw, &f)
		if typ == TypeFloat {
			bits, err := strconv.ParseUint(f.F32, 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return Float(float64(math.Float32frombits(uint32(bits))))
		}
		bits, err := strconv.ParseUint(f.F64, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return Float(math.Float64frombits(bits))
	case TypeDate:
		var s string
		mustJSON(t, raw, &s)
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		return Date(d.Year(), int(d.Month()), d.Day())
	}
	var s string
	mustJSON(t, raw, &s)
	return Str(s)
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("golden value %s: %v", raw, err)
	}
}

func goldenCase(t *testing.T, g goldenRow) ([]Column, Row) {
	cols := make([]Column, len(g.Schema))
	row := make(Row, len(g.Schema))
	for i, c := range g.Schema {
		typ, ok := goldenTypes[c.Type]
		if !ok {
			t.Fatalf("unknown golden type %q", c.Type)
		}
		cols[i] = Column{Name: c.Name, Type: typ, NotNull: c.NotNull}
		row[i] = goldenValue(t, typ, g.Values[i])
	}
	return cols, row
}

// sameValue compares bit-exactly for floats (so -0.0 and NaN payloads count).
func sameValue(typ DataType, a, b Value) bool {
	if a.Valid != b.Valid {
		return false
	}
	if !a.Valid {
		return true
	}
	switch {
	case typ == TypeFloat:
		return math.Float32bits(float32(a.F)) == math.Float32bits(float32(b.F))
	case typ == TypeDouble:
		return math.Float64bits(a.F) == math.Float64bits(b.F)
	case typ == TypeBool:
		return a.B == b.B
	case typ.IsString():
		return a.S == b.S
	}
	return a.I == b.I
}

func TestGoldenRows(t *testing.T) {
	rows := readJSONL[goldenRow](t, "openmldb-rows.jsonl")
	if len(rows) == 0 {
		t.Fatal("no golden rows")
	}
	for _, g := range rows {
		t.Run(g.Case, func(t *testing.T) {
			cols, row := goldenCase(t, g)
			want, err := hex.DecodeString(g.RowHex)
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("prefix")
			got, err := AppendRowVersion(append([]byte(nil), prefix...), cols, row, g.SchemaVersion)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) {
				t.Fatalf("AppendRow clobbered dst prefix")
			}
			if !bytes.Equal(got[len(prefix):], want) {
				t.Fatalf("encode mismatch\n got %x\nwant %x", got[len(prefix):], want)
			}
			forms := map[string]string{"row_hex": g.RowHex}
			if g.RowHexFlexible != "" {
				forms["row_hex_flexible"] = g.RowHexFlexible
			}
			for form, h := range forms {
				b, _ := hex.DecodeString(h)
				dec, err := DecodeRow(cols, b)
				if err != nil {
					t.Fatalf("decode %s: %v", form, err)
				}
				for i := range cols {
					if !sameValue(cols[i].Type, dec[i], row[i]) {
						t.Errorf("decode %s column %s: got %+v want %+v", form, cols[i].Name, dec[i], row[i])
					}
				}
			}
		})
	}
}

type goldenHash struct {
	Key    string         `json:"key"`
	Hash64 string         `json:"hash64"`
	PID    map[string]int `json:"pid"`
}

func TestGoldenHash(t *testing.T) {
	vecs := readJSONL[goldenHash](t, "openmldb-key-hash.jsonl")
	if len(vecs) == 0 {
		t.Fatal("no golden hash vectors")
	}
	for _, v := range vecs {
		want, err := strconv.ParseInt(v.Hash64, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := Hash64(v.Key); got != want {
			t.Errorf("Hash64(%.30q) = %d, want %d", v.Key, got, want)
		}
		for ns, pid := range v.PID {
			n, _ := strconv.Atoi(ns)
			if got := PartitionOf(v.Key, n); got != uint32(pid) {
				t.Errorf("PartitionOf(%.30q, %d) = %d, want %d", v.Key, n, got, pid)
			}
		}
	}
}

// TestReferenceHashTable checks the table of §5.2, which includes raw MurmurHash64A values.
func TestReferenceHashTable(t *testing.T) {
	for _, v := range []struct {
		key string
		raw uint64
		h   int64
		p8  uint32
		p4  uint32
	}{
		{"c77777", 0x382491db1cd75b18, 4045518735553288984, 0, 0},
		{"1", 0xa2784b1237e27ed3, 6739554300740862253, 5, 1},
		{"abc", 0xce08a02f9b3158b5, 3600451775755102027, 3, 3},
		{"c77777|1", 0x26b3e1c917607227, 2788820848069341735, 7, 3},
		{"!N@U#L$L%", 0x83c63f413e7a9e65, 8951397659898634651, 3, 3},
		{"!@#$%", 0x9d7f65ca919e78ec, 7097842567011731220, 4, 0},
		{"key1", 0xc8568d3eae89fa3a, 4010863117771081158, 6, 2},
		{"hello world, this is longer", 0x0c1b92f179dc975e, 872452518655596382, 6, 2},
	} {
		if got := murmurHash64A(v.key, hashSeed); got != v.raw {
			t.Errorf("murmur(%q) = %#x, want %#x", v.key, got, v.raw)
		}
		if got := Hash64(v.key); got != v.h {
			t.Errorf("Hash64(%q) = %d, want %d", v.key, got, v.h)
		}
		if PartitionOf(v.key, 8) != v.p8 || PartitionOf(v.key, 4) != v.p4 {
			t.Errorf("PartitionOf(%q) = %d/%d, want %d/%d", v.key, PartitionOf(v.key, 8), PartitionOf(v.key, 4), v.p8, v.p4)
		}
	}
}

// TestReferenceVectors checks §4.4's NULL variant and §4.5's 1/2/3-byte offset rows.
func TestReferenceVectors(t *testing.T) {
	seed := seedColumns()
	r := seedRow()
	r[1], r[5], r[6] = Null(), Bool(false), Null()
	got, err := AppendRow(nil, seed, r)
	if err != nil {
		t.Fatal(err)
	}
	want := "010130000000" + "42fe" + "0100" + "00000000" + "0300000000000000" + "cdcc8c40" + "b81e85eb51381640" + "00" + "1b037a00" + "d0c35c6a80010000" + "00"
	if hex.EncodeToString(got) != want {
		t.Fatalf("seed with NULLs\n got %x\nwant %s", got, want)
	}

	cols := []Column{{Name: "id", Type: TypeInt}, {Name: "s1", Type: TypeString}, {Name: "s2", Type: TypeString}, {Name: "ts", Type: TypeTimestamp}}
	base := Row{Int(7), Null(), Str("ab"), Int(1000)}
	for _, tc := range []struct {
		s1      Value
		size    int
		offsets string // hex of the offset table
	}{
		{Null(), 23, "0015"},
		{Str("xyz"), 26, "1518"},
		{Str(strings.Repeat("a", 300)), 325, "17004301"},
		{Str(strings.Repeat("a", 70000)), 70027, "000019011189"},
	} {
		r := append(Row(nil), base...)
		r[1] = tc.s1
		got, err := AppendRow(nil, cols, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.size {
			t.Fatalf("s1 len %d: size %d, want %d", len(tc.s1.S), len(got), tc.size)
		}
		if off := hex.EncodeToString(got[19 : 19+len(tc.offsets)/2]); off != tc.offsets {
			t.Errorf("s1 len %d: offsets %s, want %s", len(tc.s1.S), off, tc.offsets)
		}
		dec, err := DecodeRow(cols, got)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cols {
			if !sameValue(cols[i].Type, dec[i], r[i]) {
				t.Errorf("s1 len %d: column %s decoded %+v", len(tc.s1.S), cols[i].Name, dec[i])
			}
		}
	}
}

// TestFourByteOffsets covers a row above 16 MiB (4-byte little-endian offsets).
func TestFourByteOffsets(t *testing.T) {
	cols := []Column{{Name: "a", Type: TypeString}, {Name: "b", Type: TypeString}}
	big := strings.Repeat("x", 1<<24)
	row := Row{Str(big), Str("tail")}
	b, err := AppendRow(nil, cols, row)
	if err != nil {
		t.Fatal(err)
	}
	hdr := 6 + 1
	if want := hdr + 8 + len(big) + 4; len(b) != want {
		t.Fatalf("size %d, want %d", len(b), want)
	}
	if got := getOffset(b[hdr:], 4); got != uint32(hdr+8) {
		t.Fatalf("first offset %d", got)
	}
	dec, err := DecodeRow(cols, b)
	if err != nil {
		t.Fatal(err)
	}
	if dec[0].S != big || dec[1].S != "tail" {
		t.Fatal("4-byte offset row did not round-trip")
	}
}

func seedColumns() []Column {
	return []Column{
		{Name: "c1_int16", Type: TypeSmallInt}, {Name: "c2_int32", Type: TypeInt}, {Name: "c3_int64", Type: TypeBigInt},
		{Name: "c4_float", Type: TypeFloat}, {Name: "c5_double", Type: TypeDouble}, {Name: "c6_boolean", Type: TypeBool},
		{Name: "c7_string", Type: TypeVarchar}, {Name: "c8_date", Type: TypeDate}, {Name: "c9_timestamp", Type: TypeTimestamp},
	}
}

func seedRow() Row {
	return Row{Int(1), Int(2), Int(3), Float(4.4), Float(5.555), Bool(true), Str("c77777"), Date(2022, 4, 27), Int(1651051906000)}
}

func BenchmarkEncodeSeedRow(b *testing.B) {
	cols, row := seedColumns(), seedRow()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendRow(buf[:0], cols, row)
		if err != nil {
			b.Fatal(err)
		}
	}
}
