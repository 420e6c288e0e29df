package openmldbtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"math"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// rawClient is a minimal baidu_std client for tests, independent of package openmldb.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	next int64
	auth []byte
}

func dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

// send writes one request frame and returns its correlation id.
func (rc *rawClient) send(svc, meth string, req proto.Message) int64 {
	rc.t.Helper()
	rc.next++
	payload, err := proto.Marshal(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	meta := &brpcpb.RpcMeta{Request: &brpcpb.RpcRequestMeta{ServiceName: proto.String(svc), MethodName: proto.String(meth)},
		CorrelationId: proto.Int64(rc.next)}
	if rc.auth != nil {
		meta.AuthenticationData = rc.auth
	}
	b, err := appendFrame(nil, meta, payload)
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.conn.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
	return rc.next
}

// sendRaw writes a tablet request whose payload is already marshaled.
func (rc *rawClient) sendRaw(meth string, payload []byte) {
	rc.next++
	meta := &brpcpb.RpcMeta{Request: &brpcpb.RpcRequestMeta{ServiceName: proto.String(tabletServerService), MethodName: proto.String(meth)},
		CorrelationId: proto.Int64(rc.next)}
	b, err := appendFrame(nil, meta, payload)
	if err == nil {
		_, err = rc.conn.Write(b)
	}
	if err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *rawClient) recv() (*frame, error) {
	return readFrame(rc.br, make([]byte, 12))
}

// call sends one request and decodes the answer into resp; it returns the framework error code
// and the raw payload.
func (rc *rawClient) call(svc, meth string, req, resp proto.Message) (int32, []byte) {
	rc.t.Helper()
	cid := rc.send(svc, meth, req)
	f, err := rc.recv()
	if err != nil {
		rc.t.Fatalf("%s.%s: read response: %v", svc, meth, err)
	}
	if f.meta.GetCorrelationId() != cid {
		rc.t.Fatalf("%s.%s: correlation id %d, want %d", svc, meth, f.meta.GetCorrelationId(), cid)
	}
	if code := f.meta.GetResponse().GetErrorCode(); code != 0 {
		return code, nil
	}
	if err := proto.Unmarshal(f.payload, resp); err != nil {
		rc.t.Fatalf("%s.%s: decode response: %v", svc, meth, err)
	}
	return 0, f.payload
}

func (rc *rawClient) ns(meth string, req, resp proto.Message) {
	rc.t.Helper()
	if code, _ := rc.call(nameServerServiceName, meth, req, resp); code != 0 {
		rc.t.Fatalf("NameServer.%s: framework error %d", meth, code)
	}
}

func (rc *rawClient) put(req *apipb.PutRequest) *apipb.PutResponse {
	rc.t.Helper()
	resp := &apipb.PutResponse{}
	if code, _ := rc.call(tabletServerService, "Put", req, resp); code != 0 {
		rc.t.Fatalf("Put: framework error %d", code)
	}
	return resp
}

// encodeRow is a test-only row encoder (C++ SDK convention: bitmap padding bits set).
func encodeRow(cols []column, cells []cell) []byte {
	n := len(cols)
	base := 6 + (n+7)/8
	strLen, nStr := 0, 0
	for i, c := range cols {
		w, _ := fixedSize(c.typ)
		base += w
		if isStringType(c.typ) {
			nStr++
			if !cells[i].null {
				strLen += len(cells[i].s)
			}
		}
	}
	size := base
	w := 0
	if nStr > 0 {
		for w = 1; w < 4; w++ {
			if base+strLen+w*nStr <= []int{0, 0xff, 0xffff, 0xffffff}[w] {
				break
			}
		}
		size = base + strLen + w*nStr
	}
	b := make([]byte, size)
	b[0], b[1] = 1, 1
	binary.LittleEndian.PutUint32(b[2:], uint32(size))
	bm := b[6 : 6+(n+7)/8]
	for i := range bm {
		bm[i] = 0xff
	}
	pos := 6 + len(bm)
	for i, c := range cols {
		if !cells[i].null {
			bm[i>>3] &^= 1 << (i & 7)
		}
		fw, _ := fixedSize(c.typ)
		f := b[pos : pos+fw]
		pos += fw
		if cells[i].null {
			continue
		}
		switch c.typ {
		case typepb.DataType_kBool:
			if cells[i].b {
				f[0] = 1
			}
		case typepb.DataType_kSmallInt:
			binary.LittleEndian.PutUint16(f, uint16(cells[i].i))
		case typepb.DataType_kInt, typepb.DataType_kDate:
			binary.LittleEndian.PutUint32(f, uint32(cells[i].i))
		case typepb.DataType_kBigInt, typepb.DataType_kTimestamp:
			binary.LittleEndian.PutUint64(f, uint64(cells[i].i))
		case typepb.DataType_kFloat:
			binary.LittleEndian.PutUint32(f, math.Float32bits(float32(cells[i].f)))
		case typepb.DataType_kDouble:
			binary.LittleEndian.PutUint64(f, math.Float64bits(cells[i].f))
		}
	}
	str := pos + w*nStr
	k := 0
	for i, c := range cols {
		if !isStringType(c.typ) {
			continue
		}
		o := b[pos+k*w:]
		off := str
		if k == 0 && cells[i].null {
			off = 0 // C++ RowBuilder leaves the first string's entry 0 when it is NULL
		}
		switch w {
		case 1:
			o[0] = byte(off)
		case 2:
			binary.LittleEndian.PutUint16(o, uint16(off))
		case 3:
			o[0], o[1], o[2] = byte(off>>16), byte(off>>8), byte(off)
		default:
			binary.LittleEndian.PutUint32(o, uint32(off))
		}
		if !cells[i].null {
			str += copy(b[str:], cells[i].s)
		}
		k++
	}
	return b
}

func colDescs(cols []column) []*commonpb.ColumnDesc {
	out := make([]*commonpb.ColumnDesc, len(cols))
	for i, c := range cols {
		out[i] = &commonpb.ColumnDesc{Name: proto.String(c.name), DataType: c.typ.Enum(), NotNull: proto.Bool(c.notNull)}
	}
	return out
}

// tableLayout reads a table's tid, leaders and partition count through ShowTable.
type tableLayout struct {
	tid     uint32
	leaders []string
	follow  [][]string
	info    *nspb.TableInfo
}

func showTable(t testing.TB, ns *rawClient, db, name string) tableLayout {
	t.Helper()
	resp := &nspb.ShowTableResponse{}
	ns.ns("ShowTable", &nspb.ShowTableRequest{Db: proto.String(db), Name: proto.String(name)}, resp)
	if resp.GetCode() != 0 || len(resp.GetTableInfo()) != 1 {
		t.Fatalf("ShowTable %s.%s: code %d, %d tables", db, name, resp.GetCode(), len(resp.GetTableInfo()))
	}
	return layoutOf(t, resp.GetTableInfo()[0])
}

func layoutOf(t testing.TB, info *nspb.TableInfo) tableLayout {
	t.Helper()
	l := tableLayout{tid: info.GetTid(), info: info}
	for i, tp := range info.GetTablePartition() {
		if tp.GetPid() != uint32(i) {
			t.Fatalf("partition %d has pid %d", i, tp.GetPid())
		}
		leader := ""
		var fol []string
		for _, pm := range tp.GetPartitionMeta() {
			if pm.GetIsLeader() {
				leader = pm.GetEndpoint()
			} else {
				fol = append(fol, pm.GetEndpoint())
			}
		}
		l.leaders = append(l.leaders, leader)
		l.follow = append(l.follow, fol)
	}
	return l
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startWithDatabase starts a cluster (closed at the test's end) with database "d" and returns it
// with a nameserver client.
func startWithDatabase(t *testing.T, opts Options) (*Cluster, *rawClient) {
	t.Helper()
	c, err := Start(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ns := dial(t, c.Nameserver())
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("d")}, &nspb.GeneralResponse{})
	return c, ns
}
