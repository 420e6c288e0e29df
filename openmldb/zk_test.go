package openmldb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/zktest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// zkWriter lays out znodes the way OpenMLDB's nameserver and tablets do (reference §1.1).
type zkWriter struct {
	t    *testing.T
	conn *zk.Conn
	root string
}

func (w zkWriter) put(p string, data []byte, flags int32) {
	w.t.Helper()
	full := path.Join(w.root, p)
	parts := strings.Split(strings.TrimPrefix(full, "/"), "/")
	for i := 1; i < len(parts); i++ {
		dir := "/" + strings.Join(parts[:i], "/")
		if _, err := w.conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			w.t.Fatalf("create %s: %v", dir, err)
		}
	}
	if _, err := w.conn.Create(full, data, flags, zk.WorldACL(zk.PermAll)); errors.Is(err, zk.ErrNodeExists) {
		if _, err := w.conn.Set(full, data, -1); err != nil {
			w.t.Fatalf("set %s: %v", full, err)
		}
	} else if err != nil {
		w.t.Fatalf("create %s: %v", full, err)
	}
}

func testTableInfo(tid uint32, db, name string, leaders ...string) []byte {
	info := &nspb.TableInfo{
		Name: proto.String(name), Db: proto.String(db), Tid: proto.Uint32(tid),
		ColumnDesc: []*commonpb.ColumnDesc{
			{Name: proto.String("k"), DataType: typepb.DataType_kVarchar.Enum(), NotNull: proto.Bool(false)},
			// schema (field 6) supersedes data_type/not_null.
			{Name: proto.String("ts"), DataType: typepb.DataType_kBigInt.Enum(),
				Schema: &commonpb.TableColumnSchema{Type: typepb.DataType_kTimestamp.Enum(), NotNull: proto.Bool(true)}},
		},
		ColumnKey: []*commonpb.ColumnKey{
			{IndexName: proto.String("gone"), ColName: []string{"k"}, Flag: proto.Uint32(1)},
			{IndexName: proto.String("INDEX_1"), ColName: []string{"k"}, TsName: proto.String("ts")},
		},
	}
	for pid, l := range leaders {
		info.TablePartition = append(info.TablePartition, &nspb.TablePartition{
			Pid: proto.Uint32(uint32(pid)),
			PartitionMeta: []*nspb.PartitionMeta{
				{Endpoint: proto.String(l), IsLeader: proto.Bool(true)},
				{Endpoint: proto.String("tb2"), IsLeader: proto.Bool(false), IsAlive: proto.Bool(false)},
			},
		})
	}
	b, err := proto.Marshal(info)
	if err != nil {
		panic(err)
	}
	return b
}

func TestZKDiscovery(t *testing.T) {
	srv := zktest.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := zkConnect(t, ctx, srv.Addr)
	w := zkWriter{t: t, conn: conn, root: "/cluster1"}
	w.put("nodes/127.0.0.1:9001", []byte("startup_127.0.0.1:9001"), zk.FlagEphemeral)
	w.put("nodes/NLTABLET_tb1", []byte("tb1"), zk.FlagEphemeral)
	w.put("map/names/tb1", []byte("127.0.0.1:9002"), 0)
	w.put("map/names/ns1", []byte("127.0.0.1:7000"), 0)
	w.put("map/sdkendpoints/ns1", []byte("10.0.0.1:7000"), 0)
	w.put("leader/lock_request0000000002", []byte("127.0.0.1:7002"), zk.FlagEphemeral)
	w.put("leader/lock_request0000000001", []byte("ns1"), zk.FlagEphemeral)
	w.put("table/db_table_data/1", testTableInfo(1, "db", "t1", "127.0.0.1:9001", "tb1"), 0)
	w.put("table/notify", []byte("1"), 0)

	c, err := Open(ctx, Options{ZKCluster: srv.Addr, ZKPath: "/cluster1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tb, err := c.Table("db", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if tb.TID != 1 || tb.PartitionCount != 2 || tb.Partitions[0].Leader != "127.0.0.1:9001" || tb.Partitions[1].Leader != "127.0.0.1:9002" ||
		tb.Partitions[1].LeaderName != "tb1" || len(tb.Partitions[0].Followers) != 0 {
		t.Fatalf("table %+v partitions %+v", tb, tb.Partitions)
	}
	if tb.Columns[1].Type != TypeTimestamp || !tb.Columns[1].NotNull || !tb.Indexes[0].Deleted || tb.keyCols[0] != nil || len(tb.tsCols) != 1 {
		t.Fatalf("schema %+v indexes %+v", tb.Columns, tb.Indexes)
	}
	ns, err := c.nameserver(ctx)
	if err != nil || ns != "10.0.0.1:7000" {
		t.Fatalf("nameserver %q %v", ns, err)
	}
	// Deleted index 0 is skipped but index 1 keeps its position.
	parts := tb.KeyPartitions(Row{Str("c77777"), Int(1)})
	if len(parts) != 1 || parts[PartitionOf("c77777", 2)][0] != (KeyDim{Key: "c77777", Idx: 1}) {
		t.Fatalf("key partitions %v", parts)
	}

	// Another client creates a table and bumps notify: the watch rebuilds the catalog.
	w.put("table/db_table_data/2", testTableInfo(2, "db", "t2", "tb1"), 0)
	w.put("table/notify", []byte("2"), 0)
	waitFor(t, ctx, func() bool { _, err := c.Table("db", "t2"); return err == nil })

	// A new leader takes over: the leader watch re-resolves it.
	if err := conn.Delete("/cluster1/leader/lock_request0000000001", -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { ns, err := c.nameserver(ctx); return err == nil && ns == "127.0.0.1:7002" })

	// Unsupported tables are refused with a clear error.
	bad := &nspb.TableInfo{}
	if err := proto.Unmarshal(testTableInfo(3, "db", "arr", "tb1"), bad); err != nil {
		t.Fatal(err)
	}
	bad.ColumnDesc[0].DataType = typepb.DataType_kArray.Enum()
	b, _ := proto.Marshal(bad)
	w.put("table/db_table_data/3", b, 0)
	w.put("table/notify", []byte("3"), 0)
	waitFor(t, ctx, func() bool { _, err := c.Table("db", "arr"); return err == nil })
	arr, _ := c.Table("db", "arr")
	errs := c.Write(ctx, arr, []Row{{Str("x"), Int(1)}}, WriteOptions{})
	if !errors.Is(errs[0], ErrUnsupportedTable) || !strings.Contains(errs[0].Error(), "ARRAY") {
		t.Fatalf("write to ARRAY table: %v", errs[0])
	}
	if _, err := c.Table("db", "nope"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("missing table: %v", err)
	}
	if got := c.Tables(); strings.Join(got, ",") != "db.arr,db.t1,db.t2" {
		t.Fatalf("tables %v", got)
	}
}

func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached before the deadline")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// zkConnect opens a ZooKeeper session for laying out test data.
func zkConnect(t *testing.T, ctx context.Context, addr string) *zk.Conn {
	t.Helper()
	conn, ev, err := zk.Connect([]string{addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	for {
		select {
		case e := <-ev:
			if e.State == zk.StateHasSession {
				go func() {
					for range ev {
					}
				}()
				return conn
			}
		case <-ctx.Done():
			t.Fatal("no zookeeper session")
		}
	}
}

func TestTableValidate(t *testing.T) {
	tb, err := tableFromInfo(mustInfo(t, testTableInfo(9, "db", "v", "tb1")), func(string) (string, bool) { return "a:1", true })
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Validate(Row{Str("k"), Int(5)}); err != nil {
		t.Fatal(err)
	}
	var ce *ColumnError
	if err := tb.Validate(Row{Str("k"), Null()}); !errors.As(err, &ce) || ce.Column != "ts" {
		t.Fatalf("NULL TS: %v", err)
	}
	if err := tb.Validate(Row{Str("k")}); !errors.Is(err, ErrRow) {
		t.Fatalf("short row: %v", err)
	}
	if got := tb.TSColumns(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("ts columns %v", got)
	}
}

func mustInfo(t *testing.T, b []byte) *nspb.TableInfo {
	t.Helper()
	info := &nspb.TableInfo{}
	if err := proto.Unmarshal(b, info); err != nil {
		t.Fatal(err)
	}
	return info
}
