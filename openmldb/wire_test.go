package openmldb

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
)

// TestPutFrame reproduces reference §2.6 byte for byte.
func TestPutFrame(t *testing.T) {
	const wantHex = `
50 52 50 43 00 00 00 73 00 00 00 24 0a 20 0a 19
6f 70 65 6e 6d 6c 64 62 2e 61 70 69 2e 54 61 62
6c 65 74 53 65 72 76 65 72 12 03 50 75 74 20 01
10 d0 87 f3 d2 86 30 1a 36 01 01 36 00 00 00 00
fe 01 00 02 00 00 00 03 00 00 00 00 00 00 00 cd
cc 8c 40 b8 1e 85 eb 51 38 16 40 01 1b 03 7a 00
d0 c3 5c 6a 80 01 00 00 30 63 37 37 37 37 37 20
01 28 00 32 0a 0a 06 63 37 37 37 37 37 10 00`
	want, err := hex.DecodeString(strings.Join(strings.Fields(wantHex), ""))
	if err != nil {
		t.Fatal(err)
	}
	value, err := AppendRow(nil, seedColumns(), seedRow())
	if err != nil {
		t.Fatal(err)
	}
	req := &apipb.PutRequest{
		Time:       proto.Int64(1651051906000),
		Value:      value,
		Tid:        proto.Uint32(1),
		Pid:        proto.Uint32(0),
		Dimensions: []*apipb.Dimension{{Key: proto.String("c77777"), Idx: proto.Uint32(0)}},
	}
	got, err := AppendRequestFrame(nil, TabletService, "Put", 1, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Put frame\n got %x\nwant %x", got, want)
	}
}

func TestCredentialFrame(t *testing.T) {
	cred := Credential("root", "")
	if string(cred) != "uroot:1e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("credential %s", cred)
	}
	frame, err := AppendRequestFrame(nil, NameServerService, "ShowTablet", 7, cred, &apipb.PutRequest{})
	if err != nil {
		t.Fatal(err)
	}
	metaSize := int(frame[8])<<24 | int(frame[9])<<16 | int(frame[10])<<8 | int(frame[11])
	meta := &brpcpb.RpcMeta{}
	if err := proto.Unmarshal(frame[12:12+metaSize], meta); err != nil {
		t.Fatal(err)
	}
	if string(meta.GetAuthenticationData()) != string(cred) || meta.GetCorrelationId() != 7 ||
		meta.GetRequest().GetServiceName() != NameServerService || meta.GetRequest().GetMethodName() != "ShowTablet" {
		t.Fatalf("meta %v", meta)
	}
}

func TestKeyText(t *testing.T) {
	cols := []Column{
		{Name: "s", Type: TypeString}, {Name: "i", Type: TypeInt}, {Name: "b", Type: TypeBool},
		{Name: "d", Type: TypeDate}, {Name: "ts", Type: TypeTimestamp}, {Name: "si", Type: TypeSmallInt}, {Name: "bi", Type: TypeBigInt},
	}
	for _, tc := range []struct {
		row  Row
		keys []int
		want string
	}{
		{Row{Str("c77777"), Int(1), Null(), Null(), Null(), Null(), Null()}, []int{0, 1}, "c77777|1"},
		{Row{Str(""), Null(), Bool(true), Null(), Null(), Null(), Null()}, []int{0, 1, 2}, "!@#$%|!N@U#L$L%|true"},
		{Row{Null(), Null(), Bool(false), Date(2022, 4, 27), Int(1651051906000), Int(-5), Int(-9223372036854775808)}, []int{2, 3, 4, 5, 6}, "false|7996187|1651051906000|-5|-9223372036854775808"},
		{Row{Str("a|b"), Null(), Null(), Null(), Null(), Null(), Null()}, []int{0}, "a|b"},
	} {
		if got := string(AppendKey(nil, cols, tc.keys, tc.row)); got != tc.want {
			t.Errorf("key %q, want %q", got, tc.want)
		}
	}
}

func TestValidation(t *testing.T) {
	cols := []Column{{Name: "id", Type: TypeBigInt, NotNull: true}, {Name: "ts", Type: TypeTimestamp}, {Name: "d", Type: TypeDate},
		{Name: "si", Type: TypeSmallInt}, {Name: "other_ts", Type: TypeTimestamp}}
	ok := Row{Int(1), Int(5), Date(2024, 2, 29), Int(3), Null()}
	if _, err := AppendRow(nil, cols, ok); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRow(cols, []int{1}, ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(Row)
		encode bool // AppendRow rejects it (else only ValidateRow does)
		col    string
		reason string
	}{
		{"not null", func(r Row) { r[0] = Null() }, true, "id", "NULL in a NOT NULL column"},
		{"smallint range", func(r Row) { r[3] = Int(40000) }, true, "si", "out of SMALLINT range"},
		{"year 1899", func(r Row) { r[2] = Date(1899, 12, 31) }, true, "d", "outside"},
		{"year 10000", func(r Row) { r[2] = Date(10000, 1, 1) }, true, "d", "outside"},
		{"month 13", func(r Row) { r[2] = Value{Valid: true, I: int64(PackDate(2024, 1, 1)) | 12<<8} }, true, "d", "outside"},
		{"day 0", func(r Row) { r[2] = Date(2024, 1, 0) }, true, "d", "outside"},
		{"ts null", func(r Row) { r[1] = Null() }, false, "ts", "NULL in an index TS column"},
		{"ts negative", func(r Row) { r[1] = Int(-1) }, false, "ts", "negative"},
		{"timestamp negative", func(r Row) { r[4] = Int(-1000) }, false, "other_ts", "negative timestamp"},
	} {
		r := append(Row(nil), ok...)
		tc.mutate(r)
		var err error
		if tc.encode {
			_, err = AppendRow(nil, cols, r)
		} else {
			if _, eerr := AppendRow(nil, cols, r); eerr != nil {
				t.Errorf("%s: AppendRow should accept it: %v", tc.name, eerr)
			}
			err = ValidateRow(cols, []int{1}, r)
		}
		var ce *ColumnError
		if !errors.As(err, &ce) || ce.Column != tc.col || !strings.Contains(ce.Reason, tc.reason) || !errors.Is(err, ErrRow) {
			t.Errorf("%s: got %v, want column %s: %s", tc.name, err, tc.col, tc.reason)
		}
	}
	if _, err := AppendRow(nil, cols, ok[:2]); !errors.Is(err, ErrRow) {
		t.Errorf("short row: %v", err)
	}
}

func TestDecodeRejectsBadSize(t *testing.T) {
	b, _ := AppendRow(nil, seedColumns(), seedRow())
	if _, err := DecodeRow(seedColumns(), b[:len(b)-1]); !errors.Is(err, ErrRow) {
		t.Fatalf("truncated row decoded: %v", err)
	}
}

// TestPutFrameFastPath checks the hand-encoded Put frame against protobuf's deterministic
// marshalling of the same request, with and without credential and put_if_absent.
func TestPutFrameFastPath(t *testing.T) {
	value, err := AppendRow(nil, seedColumns(), seedRow())
	if err != nil {
		t.Fatal(err)
	}
	keys := []byte("xc77777|2022042715")
	dims := []putDim{{idx: 0, start: 1, end: 7}, {idx: 300, start: 8, end: 18}}
	for _, tc := range []struct {
		auth     []byte
		ifAbsent bool
		id       int64
	}{{nil, false, 1}, {Credential("root", "x"), true, 1 << 40}} {
		req := &apipb.PutRequest{
			Time: proto.Int64(1651051906000), Value: value, Tid: proto.Uint32(70000), Pid: proto.Uint32(3),
			Dimensions: []*apipb.Dimension{
				{Key: proto.String("c77777"), Idx: proto.Uint32(0)},
				{Key: proto.String("2022042715"), Idx: proto.Uint32(300)},
			},
		}
		if tc.ifAbsent {
			req.PutIfAbsent = proto.Bool(true)
		}
		want, err := AppendRequestFrame([]byte("prefix"), TabletService, "Put", tc.id, tc.auth, req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendPutFrame([]byte("prefix"), tc.id, tc.auth, &putFrame{tid: 70000, pid: 3, time: 1651051906000,
			value: value, keys: keys, dims: dims, ifAbsent: tc.ifAbsent})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("fast Put frame\n got %x\nwant %x", got, want)
		}
	}
}

func TestParsePutResponse(t *testing.T) {
	b, err := proto.Marshal(&apipb.PutResponse{Code: proto.Int32(103), Msg: proto.String("table is follower")})
	if err != nil {
		t.Fatal(err)
	}
	code, msg, err := parsePutResponse(append(b, 0x18, 0x05)) // plus an unknown varint field 3
	if err != nil || code != 103 || msg != "table is follower" {
		t.Fatalf("got %d %q %v", code, msg, err)
	}
	if _, _, err := parsePutResponse([]byte{0x08}); err == nil {
		t.Fatal("truncated response accepted")
	}
}
