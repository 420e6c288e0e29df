package openmldbtest

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// putFrameHex is the complete Put frame of reference §2.6.
const putFrameHex = `
50 52 50 43 00 00 00 73 00 00 00 24 0a 20 0a 19
6f 70 65 6e 6d 6c 64 62 2e 61 70 69 2e 54 61 62
6c 65 74 53 65 72 76 65 72 12 03 50 75 74 20 01
10 d0 87 f3 d2 86 30 1a 36 01 01 36 00 00 00 00
fe 01 00 02 00 00 00 03 00 00 00 00 00 00 00 cd
cc 8c 40 b8 1e 85 eb 51 38 16 40 01 1b 03 7a 00
d0 c3 5c 6a 80 01 00 00 30 63 37 37 37 37 37 20
01 28 00 32 0a 0a 06 63 37 37 37 37 37 10 00`

// seedRowHex is the §4.4 row (C++ convention).
const seedRowHex = "01013600000000fe0100020000000300000000000000cdcc8c40b81e85eb51381640011b037a00d0c35c6a8001000030633737373737"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedColumns() []column {
	return []column{
		{name: "c1_int16", typ: typepb.DataType_kSmallInt}, {name: "c2_int32", typ: typepb.DataType_kInt},
		{name: "c3_int64", typ: typepb.DataType_kBigInt}, {name: "c4_float", typ: typepb.DataType_kFloat},
		{name: "c5_double", typ: typepb.DataType_kDouble}, {name: "c6_boolean", typ: typepb.DataType_kBool},
		{name: "c7_string", typ: typepb.DataType_kVarchar}, {name: "c8_date", typ: typepb.DataType_kDate},
		{name: "c9_timestamp", typ: typepb.DataType_kTimestamp},
	}
}

func TestReferencePutFrame(t *testing.T) {
	raw := unhex(t, putFrameHex)
	if len(raw) != 127 {
		t.Fatalf("frame is %d bytes, want 127", len(raw))
	}
	f, err := parseFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.meta.GetRequest().GetServiceName(); got != "openmldb.api.TabletServer" {
		t.Errorf("service %q", got)
	}
	if got := f.meta.GetRequest().GetMethodName(); got != "Put" {
		t.Errorf("method %q", got)
	}
	if f.meta.GetCorrelationId() != 1 || len(f.attachment) != 0 || len(f.meta.GetAuthenticationData()) != 0 {
		t.Errorf("meta %v", f.meta)
	}
	req := &apipb.PutRequest{}
	if err := proto.Unmarshal(f.payload, req); err != nil {
		t.Fatal(err)
	}
	if req.GetTime() != 1651051906000 || req.GetTid() != 1 || req.GetPid() != 0 || req.Pid == nil {
		t.Errorf("request %v", req)
	}
	if d := req.GetDimensions(); len(d) != 1 || d[0].GetKey() != "c77777" || d[0].GetIdx() != 0 {
		t.Errorf("dimensions %v", d)
	}
	if !bytes.Equal(req.GetValue(), unhex(t, seedRowHex)) {
		t.Errorf("value %x", req.GetValue())
	}
	cells, err := decodeRow(seedColumns(), 1, req.GetValue())
	if err != nil {
		t.Fatal(err)
	}
	if key := keyText(seedColumns(), []int{6}, cells); key != "c77777" || pidOf(key, 8) != 0 {
		t.Errorf("key %q pid %d", key, pidOf(key, 8))
	}
	// Our own framing of the same meta and payload reproduces the frame byte for byte.
	again, err := appendFrame(nil, f.meta, f.payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, raw) {
		t.Errorf("re-framed:\n%x\nwant\n%x", again, raw)
	}
	for _, bad := range [][]byte{append([]byte("PRPX"), raw[4:]...), raw[:100]} {
		if _, err := parseFrame(bad); err == nil {
			t.Errorf("malformed frame accepted: %x", bad[:8])
		}
	}
}
