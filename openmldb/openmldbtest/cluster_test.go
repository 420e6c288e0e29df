package openmldbtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/zktest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// seedTable: index 0 = key c7_string, ts c9_timestamp; index 1 = key c1_int16|c2_int32, no ts.
func seedTableInfo(db, name string, parts, replicas uint32) *nspb.TableInfo {
	return &nspb.TableInfo{
		Name: proto.String(name), Db: proto.String(db),
		PartitionNum: proto.Uint32(parts), ReplicaNum: proto.Uint32(replicas),
		ColumnDesc: colDescs(seedColumns()),
		ColumnKey: []*commonpb.ColumnKey{
			{IndexName: proto.String("INDEX_0_1"), ColName: []string{"c7_string"}, TsName: proto.String("c9_timestamp")},
			{IndexName: proto.String("INDEX_1_1"), ColName: []string{"c1_int16", "c2_int32"}},
		},
	}
}

// seedPuts builds the per-pid Puts of one seed-schema row, as a correct client would.
func seedPuts(t testing.TB, l tableLayout, cells []cell) map[uint32]*apipb.PutRequest {
	t.Helper()
	cols := seedColumns()
	row := encodeRow(cols, cells)
	n := len(l.leaders)
	out := map[uint32]*apipb.PutRequest{}
	for idx, keyCols := range [][]int{{6}, {0, 1}} {
		key := keyText(cols, keyCols, cells)
		pid := pidOf(key, n)
		req := out[pid]
		if req == nil {
			req = &apipb.PutRequest{Tid: proto.Uint32(l.tid), Pid: proto.Uint32(pid), Value: row,
				Time: proto.Int64(time.Now().UnixMilli())}
			out[pid] = req
		}
		req.Dimensions = append(req.Dimensions, &apipb.Dimension{Key: proto.String(key), Idx: proto.Uint32(uint32(idx))})
	}
	return out
}

func seedCells(i int) []cell {
	return []cell{{i: int64(i % 7)}, {i: int64(i)}, {i: int64(i) * 1000}, {f: 4.4}, {f: 5.555},
		{b: i%2 == 0}, {s: fmt.Sprintf("user_%d", i%13), null: i%29 == 5}, {i: 7996187}, {i: 1651051906000 + int64(i)}}
}

// traverseAll pages through one index of every partition with the given limit.
func traverseAll(t *testing.T, c *Cluster, l tableLayout, idxName string, limit uint32) [][]byte {
	t.Helper()
	var rows [][]byte
	for pid, leader := range l.leaders {
		tc := dial(t, leader)
		req := &apipb.TraverseRequest{Tid: proto.Uint32(l.tid), Pid: proto.Uint32(uint32(pid)), IdxName: proto.String(idxName), Limit: proto.Uint32(limit)}
		for page := 0; ; page++ {
			if page > 100000 {
				t.Fatal("traverse does not finish")
			}
			resp := &apipb.TraverseResponse{}
			if code, _ := tc.call(tabletServerService, "Traverse", req, resp); code != 0 || resp.GetCode() != 0 {
				t.Fatalf("Traverse pid %d: framework %d code %d %s", pid, code, resp.GetCode(), resp.GetMsg())
			}
			p := resp.GetPairs()
			got := 0
			for len(p) > 0 {
				n := int(binary.LittleEndian.Uint32(p))
				pkLen := int(binary.LittleEndian.Uint32(p[4:]))
				rec := p[16 : 8+n]
				rows = append(rows, append([]byte(nil), rec[pkLen:]...))
				p = p[8+n:]
				got++
			}
			if uint32(got) != resp.GetCount() {
				t.Fatalf("Traverse count %d but %d pairs", resp.GetCount(), got)
			}
			if resp.GetIsFinish() {
				break
			}
			req.Pk, req.Ts, req.TsPos = proto.String(resp.GetPk()), proto.Uint64(resp.GetTs()), proto.Uint32(resp.GetTsPos())
		}
	}
	return rows
}

func sortedHex(rows [][]byte) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%x", r)
	}
	sort.Strings(out)
	return out
}

func zkGet(t *testing.T, conn *zk.Conn, p string) []byte {
	t.Helper()
	b, _, err := conn.Get(p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	return b
}

func TestClusterZooKeeper(t *testing.T) {
	zs := zktest.StartT(t)
	ctx := testCtx(t)
	c, err := Start(ctx, Options{ZK: zs.Addr, ZKPath: "/it/openmldb"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	zc, err := dialZK(ctx, zs.Addr, c.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	root := c.ZKPath()

	// Registration layout.
	leaders, _, err := zc.Children(root + "/leader")
	if err != nil || len(leaders) != 1 || !strings.HasPrefix(leaders[0], "lock_request") || len(leaders[0]) != len("lock_request")+10 {
		t.Fatalf("leader children %v %v", leaders, err)
	}
	if got := string(zkGet(t, zc, root+"/leader/"+leaders[0])); got != c.Nameserver() {
		t.Fatalf("leader value %q, want %q", got, c.Nameserver())
	}
	nodes, _, err := zc.Children(root + "/nodes")
	if err != nil || !slices.Equal(sortedStrings(nodes), sortedStrings(c.Tablets())) || len(nodes) != 3 {
		t.Fatalf("nodes %v, tablets %v (%v)", nodes, c.Tablets(), err)
	}
	if got := string(zkGet(t, zc, root+"/nodes/"+nodes[0])); got != "startup_"+nodes[0] {
		t.Fatalf("node value %q", got)
	}
	if got := string(zkGet(t, zc, root+"/table/notify")); got != "1" {
		t.Fatalf("notify %q", got)
	}

	ns := dial(t, c.Nameserver())
	gr := &nspb.GeneralResponse{}
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("db1")}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("CreateDatabase: %d %s", gr.GetCode(), gr.GetMsg())
	}
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("db1")}, gr)
	if gr.GetCode() != 801 {
		t.Fatalf("CreateDatabase twice: %d", gr.GetCode())
	}
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("db1"), IfNotExists: proto.Bool(true)}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("CreateDatabase if_not_exists: %d", gr.GetCode())
	}
	if ok, _, _ := zc.Exists(root + "/db/db1"); !ok {
		t.Fatal("no /db/db1 znode")
	}
	sd := &nspb.ShowDatabaseResponse{}
	ns.ns("ShowDatabase", &nspb.GeneralRequest{}, sd)
	if !slices.Equal(sd.GetDb(), []string{"db1"}) {
		t.Fatalf("ShowDatabase %v", sd.GetDb())
	}

	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("nodb", "t", 8, 2)}, gr)
	if gr.GetCode() != 802 {
		t.Fatalf("CreateTable in missing db: %d", gr.GetCode())
	}
	bad := seedTableInfo("db1", "bad", 8, 2)
	bad.ColumnKey[1].ColName = []string{"c4_float"}
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: bad}, gr)
	if gr.GetCode() != codeInvalidParameter {
		t.Fatalf("CreateTable with float key: %d", gr.GetCode())
	}
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("db1", "seed", 8, 2)}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("CreateTable: %d %s", gr.GetCode(), gr.GetMsg())
	}
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("db1", "seed", 8, 2)}, gr)
	if gr.GetCode() != 101 {
		t.Fatalf("CreateTable twice: %d", gr.GetCode())
	}
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("db1", "seed", 8, 2), CreateIfNotExist: proto.Bool(true)}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("CreateTable if not exists: %d", gr.GetCode())
	}
	if got := string(zkGet(t, zc, root+"/table/notify")); got != "2" {
		t.Fatalf("notify after create %q", got)
	}
	if got := string(zkGet(t, zc, root+"/table/table_index")); got != "1" {
		t.Fatalf("table_index %q", got)
	}
	zinfo := &nspb.TableInfo{}
	if err := proto.Unmarshal(zkGet(t, zc, root+"/table/db_table_data/1"), zinfo); err != nil {
		t.Fatal(err)
	}
	l := layoutOf(t, zinfo)
	if l.tid != 1 || len(l.leaders) != 8 || zinfo.GetReplicaNum() != 2 || zinfo.GetDb() != "db1" || zinfo.GetName() != "seed" {
		t.Fatalf("TableInfo in zk: %v", zinfo)
	}
	for pid := range l.leaders {
		if l.leaders[pid] == "" || len(l.follow[pid]) != 1 || l.follow[pid][0] == l.leaders[pid] {
			t.Fatalf("pid %d: leader %q followers %v", pid, l.leaders[pid], l.follow[pid])
		}
	}
	if sl := showTable(t, ns, "db1", "seed"); !proto.Equal(sl.info, zinfo) {
		t.Fatalf("ShowTable differs from zk:\n%v\n%v", sl.info, zinfo)
	}

	// Default index rule: first column not float/double, no ts.
	noidx := &nspb.TableInfo{Name: proto.String("noidx"), Db: proto.String("db1"), ColumnDesc: colDescs([]column{
		{name: "f", typ: typepb.DataType_kDouble}, {name: "id", typ: typepb.DataType_kInt}, {name: "s", typ: typepb.DataType_kVarchar}})}
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: noidx}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("CreateTable noidx: %d %s", gr.GetCode(), gr.GetMsg())
	}
	nl := showTable(t, ns, "db1", "noidx")
	if ck := nl.info.GetColumnKey(); len(ck) != 1 || !slices.Equal(ck[0].GetColName(), []string{"id"}) || ck[0].GetTsName() != "" ||
		!strings.HasPrefix(ck[0].GetIndexName(), "INDEX_0_") || nl.info.GetPartitionNum() != 8 || nl.info.GetReplicaNum() != 3 {
		t.Fatalf("default index/partitions: %v", nl.info)
	}

	// The seed row through the right leaders; a successful Put's body is exactly 08 00.
	puts := seedPuts(t, l, []cell{{i: 1}, {i: 2}, {i: 3}, {f: float64(float32(4.4))}, {f: 5.555}, {b: true}, {s: "c77777"}, {i: 7996187}, {i: 1651051906000}})
	if !bytes.Equal(puts[0].GetValue(), unhex(t, seedRowHex)) {
		t.Fatalf("seed row encodes to %x", puts[0].GetValue())
	}
	for pid, req := range puts {
		tc := dial(t, l.leaders[pid])
		resp := &apipb.PutResponse{}
		code, raw := tc.call(tabletServerService, "Put", req, resp)
		if code != 0 || !bytes.Equal(raw, []byte{0x08, 0x00}) {
			t.Fatalf("Put pid %d: framework %d body %x (%v)", pid, code, raw, resp)
		}
	}
	rows, err := c.Rows("db1", "seed")
	if err != nil || len(rows) != 1 || !bytes.Equal(rows[0], unhex(t, seedRowHex)) {
		t.Fatalf("Rows: %x %v", rows, err)
	}
	if got := traverseAll(t, c, l, "", 1); len(got) != 1 || !bytes.Equal(got[0], rows[0]) {
		t.Fatalf("Traverse: %x", got)
	}
	if got := traverseAll(t, c, l, "INDEX_1_1", 100); len(got) != 1 || !bytes.Equal(got[0], rows[0]) {
		t.Fatalf("Traverse index 1: %x", got)
	}
	tc0 := dial(t, l.follow[0][0]) // reads are served by followers (replicated synchronously)
	sr := &apipb.ScanResponse{}
	tc0.call(tabletServerService, "Scan", &apipb.ScanRequest{Tid: proto.Uint32(1), Pid: proto.Uint32(0), Pk: proto.String("c77777")}, sr)
	if want := append(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(nil, 8+54), 1651051906000), rows[0]...); sr.GetCode() != 0 || sr.GetCount() != 1 || !bytes.Equal(sr.GetPairs(), want) {
		t.Fatalf("Scan on follower: %v", sr)
	}
	tc0.call(tabletServerService, "Scan", &apipb.ScanRequest{Tid: proto.Uint32(1), Pid: proto.Uint32(0), Pk: proto.String("c77777"), Et: proto.Uint64(5)}, sr)
	if sr.GetCode() != 117 {
		t.Fatalf("Scan st<et: %d", sr.GetCode())
	}
	gresp := &apipb.GetResponse{}
	tc0.call(tabletServerService, "Get", &apipb.GetRequest{Tid: proto.Uint32(1), Pid: proto.Uint32(0), Key: proto.String("c77777")}, gresp)
	if gresp.GetCode() != 0 || gresp.GetTs() != 1651051906000 || !bytes.Equal(gresp.GetValue(), rows[0]) {
		t.Fatalf("Get: %v", gresp)
	}

	// Pipelining: 300 rows on one connection per leader, all sent before any answer is read.
	conns := map[string]*rawClient{}
	pending := map[*rawClient]map[int64]bool{}
	want := [][]byte{rows[0]}
	for i := 0; i < 300; i++ {
		cells := seedCells(i)
		want = append(want, encodeRow(seedColumns(), cells))
		for pid, req := range seedPuts(t, l, cells) {
			ep := l.leaders[pid]
			if conns[ep] == nil {
				conns[ep] = dial(t, ep)
				pending[conns[ep]] = map[int64]bool{}
			}
			pending[conns[ep]][conns[ep].send(tabletServerService, "Put", req)] = true
		}
	}
	for rc, ids := range pending {
		for len(ids) > 0 {
			f, err := rc.recv()
			if err != nil {
				t.Fatal(err)
			}
			resp := &apipb.PutResponse{}
			if err := proto.Unmarshal(f.payload, resp); err != nil || f.meta.GetResponse().GetErrorCode() != 0 || resp.GetCode() != 0 {
				t.Fatalf("pipelined Put: %v %v %v", f.meta, resp, err)
			}
			if !ids[f.meta.GetCorrelationId()] {
				t.Fatalf("unexpected correlation id %d", f.meta.GetCorrelationId())
			}
			delete(ids, f.meta.GetCorrelationId())
		}
	}
	if got := traverseAll(t, c, l, "INDEX_0_1", 7); !slices.Equal(sortedHex(got), sortedHex(want)) {
		t.Fatalf("Traverse after pipelined puts: %d rows, want %d", len(got), len(want))
	}
	if got := traverseAll(t, c, l, "INDEX_1_1", 0+1000); !slices.Equal(sortedHex(got), sortedHex(want)) {
		t.Fatalf("Traverse index 1: %d rows, want %d", len(got), len(want))
	}
	if n, err := c.Count("db1", "seed"); err != nil || n != len(want) {
		t.Fatalf("Count %d %v, want %d", n, err, len(want))
	}

	t.Run("strict", func(t *testing.T) { testStrictPuts(t, c, l) })
	t.Run("framework", func(t *testing.T) { testFramework(t, c) })

	// MoveLeader: the TableInfo in ZooKeeper changes, notify is bumped, the old leader answers 103.
	before := string(zkGet(t, zc, root+"/table/notify"))
	oldLeader := l.leaders[0]
	newIdx := slices.Index(c.Tablets(), l.follow[0][0])
	if err := c.MoveLeader("db1", "seed", 0, newIdx); err != nil {
		t.Fatal(err)
	}
	if after := string(zkGet(t, zc, root+"/table/notify")); after == before {
		t.Fatalf("notify not bumped by MoveLeader (%s)", after)
	}
	if err := proto.Unmarshal(zkGet(t, zc, root+"/table/db_table_data/1"), zinfo); err != nil {
		t.Fatal(err)
	}
	moved := layoutOf(t, zinfo)
	if moved.leaders[0] != c.Tablets()[newIdx] || moved.follow[0][0] != oldLeader {
		t.Fatalf("after MoveLeader pid 0: leader %s followers %v", moved.leaders[0], moved.follow[0])
	}
	cells := seedCells(1000)
	cells[6] = cell{s: "c77777"} // pid 0 under 8 partitions
	req := seedPuts(t, moved, cells)[0]
	if r := dial(t, oldLeader).put(req); r.GetCode() != 103 {
		t.Fatalf("Put on old leader: %v", r)
	}
	if r := dial(t, moved.leaders[0]).put(req); r.GetCode() != 0 {
		t.Fatalf("Put on new leader: %v", r)
	}

	// StopTablet: its ephemeral node goes away and its replicas are marked dead.
	stopIdx := slices.Index(c.Tablets(), oldLeader)
	if err := c.StopTablet(stopIdx); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := zc.Exists(path.Join(root, "nodes", oldLeader)); ok {
		t.Fatalf("node %s still registered after StopTablet", oldLeader)
	}
	if err := proto.Unmarshal(zkGet(t, zc, root+"/table/db_table_data/1"), zinfo); err != nil {
		t.Fatal(err)
	}
	for _, tp := range zinfo.GetTablePartition() {
		for _, pm := range tp.GetPartitionMeta() {
			if pm.GetEndpoint() == oldLeader && pm.GetIsAlive() {
				t.Fatalf("pid %d: stopped tablet still alive in TableInfo", tp.GetPid())
			}
		}
	}
	st := &nspb.ShowTabletResponse{}
	ns.ns("ShowTablet", &nspb.ShowTabletRequest{}, st)
	offline := 0
	for _, ts := range st.GetTablets() {
		if ts.GetState() == tabletStateOffline {
			offline++
		}
	}
	if len(st.GetTablets()) != 3 || offline != 1 {
		t.Fatalf("ShowTablet: %v", st)
	}

	ns.ns("DropTable", &nspb.DropTableRequest{Db: proto.String("db1"), Name: proto.String("noidx")}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("DropTable: %d %s", gr.GetCode(), gr.GetMsg())
	}
	if ok, _, _ := zc.Exists(root + "/table/db_table_data/2"); ok {
		t.Fatal("dropped table still in zk")
	}
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func testStrictPuts(t *testing.T, c *Cluster, l tableLayout) {
	cells := seedCells(4242)
	puts := seedPuts(t, l, cells)
	var pid uint32
	var req *apipb.PutRequest
	for p, r := range puts {
		pid, req = p, r
		break
	}
	leader := dial(t, l.leaders[pid])
	check := func(name string, rc *rawClient, r *apipb.PutRequest, code int32, msgPart string) {
		t.Helper()
		resp := rc.put(r)
		if resp.GetCode() != code || !strings.Contains(resp.GetMsg(), msgPart) {
			t.Errorf("%s: got %d %q, want %d containing %q", name, resp.GetCode(), resp.GetMsg(), code, msgPart)
		}
	}
	wrongPid := proto.Clone(req).(*apipb.PutRequest)
	wrongPid.Pid = proto.Uint32((pid + 1) % uint32(len(l.leaders)))
	check("wrong pid", dial(t, l.leaders[wrongPid.GetPid()]), wrongPid, codeInvalidDimension, "hashes to pid")
	check("follower", dial(t, l.follow[pid][0]), req, codeTableIsFollower, "table is follower")
	badSize := proto.Clone(req).(*apipb.PutRequest)
	badSize.Value = append(slices.Clone(req.GetValue()), 0)
	check("size header", leader, badSize, codePutFailed, "size header")
	wrongKey := proto.Clone(req).(*apipb.PutRequest)
	wrongKey.Dimensions[0].Key = proto.String(wrongKey.Dimensions[0].GetKey() + "x")
	check("wrong key", leader, wrongKey, codeInvalidDimension, "rebuilt from the row")
	badIdx := proto.Clone(req).(*apipb.PutRequest)
	badIdx.Dimensions[0].Idx = proto.Uint32(5)
	check("idx range", leader, badIdx, codeInvalidDimension, "no such live index")
	noDims := proto.Clone(req).(*apipb.PutRequest)
	noDims.Dimensions = nil
	check("no dimensions", leader, noDims, codeInvalidDimension, "without dimensions")
	noTable := proto.Clone(req).(*apipb.PutRequest)
	noTable.Tid = proto.Uint32(999)
	check("unknown tid", leader, noTable, codeTableNotExist, "not exist")

	// NULL TS column: the ts index (idx 0) must be refused with 116.
	nullTS := seedCells(4243)
	nullTS[8] = cell{null: true}
	for p, r := range seedPuts(t, l, nullTS) {
		if r.GetDimensions()[0].GetIdx() == 0 {
			check("NULL ts", dial(t, l.leaders[p]), r, codePutFailed, "is NULL")
		}
	}
	negTS := seedCells(4244)
	negTS[8] = cell{i: -1}
	for p, r := range seedPuts(t, l, negTS) {
		check("negative ts", dial(t, l.leaders[p]), r, codePutFailed, "negative")
	}

	// put_if_absent: a byte-identical row is skipped with "exists but ignore".
	before, _ := c.Count("db1", "seed")
	abs := seedPuts(t, l, seedCells(5000))
	for p, r := range abs {
		r.PutIfAbsent = proto.Bool(true)
		check("put_if_absent first", dial(t, l.leaders[p]), r, 0, "")
	}
	for p, r := range abs {
		r.Time = proto.Int64(r.GetTime() + 10)
		check("put_if_absent again", dial(t, l.leaders[p]), r, 0, "exists but ignore")
	}
	if after, _ := c.Count("db1", "seed"); after != before+1 {
		t.Errorf("put_if_absent: count %d -> %d", before, after)
	}

	// Injected failures and stalls.
	c.FailPuts(1, 160)
	check("FailPuts", leader, req, 160, "injected")
	// A stalled Put gets no answer until the stall is lifted.
	c.StallPuts(time.Hour)
	cid := leader.send(tabletServerService, "Put", req)
	leader.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if f, err := leader.recv(); err == nil {
		t.Fatalf("stalled Put answered: %v", f.meta)
	}
	c.StallPuts(0)
	leader.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := readFrame(leader.br, make([]byte, 12))
	resp := &apipb.PutResponse{}
	if err != nil || f.meta.GetCorrelationId() != cid || proto.Unmarshal(f.payload, resp) != nil || resp.GetCode() != 0 {
		t.Fatalf("released Put: %v %v", err, resp)
	}
}

func testFramework(t *testing.T, c *Cluster) {
	rc := dial(t, c.Tablets()[0])
	if code, _ := rc.call("openmldb.api.NoSuch", "Put", &apipb.PutRequest{}, &apipb.PutResponse{}); code != errNoService {
		t.Errorf("unknown service: %d", code)
	}
	if code, _ := rc.call(tabletServerService, "NoSuch", &apipb.PutRequest{}, &apipb.PutResponse{}); code != errNoMethod {
		t.Errorf("unknown method: %d", code)
	}
	// The connection still works after framework errors; a malformed frame closes it.
	if code, _ := rc.call(tabletServerService, "Count", &apipb.CountRequest{Tid: proto.Uint32(1)}, &apipb.CountResponse{}); code != 0 {
		t.Errorf("Count: %d", code)
	}
	if _, err := rc.conn.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.recv(); err == nil {
		t.Error("malformed frame did not close the connection")
	}
}
