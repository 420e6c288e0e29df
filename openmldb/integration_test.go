package openmldb_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/zktest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var testColumns = []openmldb.Column{
	{Name: "id", Type: openmldb.TypeBigInt, NotNull: true},
	{Name: "c1", Type: openmldb.TypeSmallInt},
	{Name: "c2", Type: openmldb.TypeInt},
	{Name: "c4", Type: openmldb.TypeFloat},
	{Name: "c5", Type: openmldb.TypeDouble},
	{Name: "c6", Type: openmldb.TypeBool},
	{Name: "s", Type: openmldb.TypeString},
	{Name: "c8", Type: openmldb.TypeDate},
	{Name: "ts", Type: openmldb.TypeTimestamp, NotNull: true},
}

var testIndexes = []openmldb.Index{
	{Keys: []string{"id"}, TS: "ts"},
	{Keys: []string{"s"}}, // NULL and empty strings become the SDK's tokens
}

// testRow builds row i with a mix of NULLs and string sizes (1-, 2- and 3-byte offsets).
func testRow(i int) openmldb.Row {
	n := func(cond bool, v openmldb.Value) openmldb.Value {
		if cond {
			return openmldb.Null()
		}
		return v
	}
	var s openmldb.Value
	switch {
	case i%7 == 0:
		s = openmldb.Null()
	case i%7 == 1:
		s = openmldb.Str("")
	case i%997 == 0:
		s = openmldb.Str(strings.Repeat("L", 70000+i))
	case i%97 == 0:
		s = openmldb.Str(strings.Repeat("m", 300+i%50))
	default:
		s = openmldb.Str(fmt.Sprintf("s-%d", i%500))
	}
	return openmldb.Row{
		openmldb.Int(int64(i)),
		n(i%3 == 0, openmldb.Int(int64(i%30000-15000))),
		n(i%5 == 0, openmldb.Int(int64(i)*-7919)),
		n(i%4 == 0, openmldb.Float(float64(float32(float64(i)/3)))),
		n(i%6 == 0, openmldb.Float(float64(i)*1.0001)),
		n(i%9 == 0, openmldb.Bool(i%2 == 0)),
		s,
		n(i%11 == 0, openmldb.Date(1900+i%8000, 1+i%12, 1+i%28)),
		openmldb.Int(1651051906000 + int64(i)),
	}
}

func sameRow(a, b openmldb.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Valid != y.Valid {
			return false
		}
		if !x.Valid {
			continue
		}
		if x.I != y.I || x.S != y.S || x.B != y.B || math.Float64bits(x.F) != math.Float64bits(y.F) {
			return false
		}
	}
	return true
}

type env struct {
	zk      *zktest.Server
	cluster *openmldbtest.Cluster
	client  *openmldb.Client
}

func startEnv(t *testing.T, ctx context.Context, copts openmldbtest.Options, maxInFlight int) *env {
	t.Helper()
	e := &env{}
	if copts.ZK == "" && copts.Tablets != 1 {
		e.zk = zktest.StartT(t)
		copts.ZK = e.zk.Addr
	}
	cl, err := openmldbtest.Start(ctx, copts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(cl.Close)
	e.cluster = cl
	opts := openmldb.Options{User: copts.User, Password: copts.Password, MaxInFlight: maxInFlight, Logger: quiet, RPCTimeout: 5 * time.Second}
	if copts.ZK != "" {
		opts.ZKCluster, opts.ZKPath = copts.ZK, cl.ZKPath()
	} else {
		opts.Nameserver = cl.Nameserver()
	}
	c, err := openmldb.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open client: %v", err)
	}
	t.Cleanup(c.Close)
	e.client = c
	return e
}

func createTestTable(t *testing.T, ctx context.Context, c *openmldb.Client, db, name string, partitions, replicas uint32) *openmldb.Table {
	t.Helper()
	if err := c.CreateDatabase(ctx, db, true); err != nil {
		t.Fatal(err)
	}
	tb, err := c.CreateTable(ctx, openmldb.TableSpec{DB: db, Name: name, Columns: testColumns, Indexes: testIndexes,
		PartitionNum: partitions, ReplicaNum: replicas})
	if err != nil {
		t.Fatal(err)
	}
	if tb.PartitionCount != int(partitions) {
		t.Fatalf("table has %d partitions, want %d", tb.PartitionCount, partitions)
	}
	return tb
}

// readAll traverses the table through the client and decodes every row, keyed by id.
func readAll(t *testing.T, ctx context.Context, c *openmldb.Client, tb *openmldb.Table) map[int64]openmldb.Row {
	t.Helper()
	got := map[int64]openmldb.Row{}
	err := c.Traverse(ctx, tb, func(b []byte) error {
		r, err := openmldb.DecodeRow(tb.Columns, b)
		if err != nil {
			return err
		}
		if _, dup := got[r[0].I]; dup {
			return fmt.Errorf("id %d read twice", r[0].I)
		}
		got[r[0].I] = r
		return nil
	})
	if err != nil {
		t.Fatalf("traverse: %v", err)
	}
	return got
}

func TestIntegrationWriteReadBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 3}, 0)
	tb := createTestTable(t, ctx, e.client, "db1", "t1", 8, 2)

	const total = 10000
	rows := make([]openmldb.Row, total)
	for i := range rows {
		rows[i] = testRow(i)
	}
	for start := 0; start < total; start += 1000 {
		for i, err := range e.client.Write(ctx, tb, rows[start:start+1000], openmldb.WriteOptions{}) {
			if err != nil {
				t.Fatalf("row %d: %v", start+i, err)
			}
		}
	}
	got := readAll(t, ctx, e.client, tb)
	if len(got) != total {
		t.Fatalf("read %d rows, want %d", len(got), total)
	}
	for i, want := range rows {
		if !sameRow(got[int64(i)], want) {
			t.Fatalf("row %d: got %+v want %+v", i, got[int64(i)], want)
		}
	}
	if n, err := e.cluster.Count("db1", "t1"); err != nil || n != total {
		t.Fatalf("cluster holds %d rows (%v), want %d", n, err, total)
	}

	// Get/Scan/Count by key through both indexes.
	r, _, err := e.client.Get(ctx, tb, 0, "42")
	if err != nil || !sameRow(r, rows[42]) {
		t.Fatalf("get id 42: %v %+v", err, r)
	}
	key, _ := tb.IndexKey(1, rows[8]) // "s-8"
	scanned, err := e.client.Scan(ctx, tb, 1, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, row := range rows {
		if k, _ := tb.IndexKey(1, row); k == key {
			want++
		}
	}
	if len(scanned) != want {
		t.Fatalf("scan %q: %d rows, want %d", key, len(scanned), want)
	}
	if n, err := e.client.Count(ctx, tb, 1, openmldb.NullKeyToken); err != nil || n != uint64((total+6)/7) {
		t.Fatalf("count NULL key: %d %v", n, err)
	}
	if _, _, err := e.client.Get(ctx, tb, 0, "99999"); !errors.Is(err, openmldb.ErrKeyNotFound) {
		t.Fatalf("get missing key: %v", err)
	}

	// put_if_absent: an identical row is not stored again.
	for _, err := range e.client.Write(ctx, tb, rows[:10], openmldb.WriteOptions{PutIfAbsent: true}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := e.cluster.Count("db1", "t1"); n != total {
		t.Fatalf("put_if_absent stored duplicates: %d rows", n)
	}

	// Data errors come back per row and are not retried.
	bad := []openmldb.Row{testRow(20001), testRow(20002), testRow(20003)}
	bad[1][8] = openmldb.Int(-5)
	errs := e.client.Write(ctx, tb, bad, openmldb.WriteOptions{})
	var ce *openmldb.ColumnError
	if errs[0] != nil || errs[2] != nil || !errors.As(errs[1], &ce) || ce.Column != "ts" {
		t.Fatalf("validation results %v", errs)
	}
	e.cluster.FailPuts(1, openmldb.CodePutFailed)
	errs = e.client.Write(ctx, tb, []openmldb.Row{testRow(20004)}, openmldb.WriteOptions{})
	var se *openmldb.ServerError
	if !errors.As(errs[0], &se) || se.Code != openmldb.CodePutFailed {
		t.Fatalf("injected 116: %v", errs[0])
	}
	// Follower answers are retried after a refresh.
	e.cluster.FailPuts(3, openmldb.CodeTableIsFollower)
	for _, err := range e.client.Write(ctx, tb, []openmldb.Row{testRow(20005), testRow(20006)}, openmldb.WriteOptions{}) {
		if err != nil {
			t.Fatalf("103 not retried: %v", err)
		}
	}
}

func TestIntegrationCatalogFollowsNotify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 3}, 0)
	other, err := openmldb.Open(ctx, openmldb.Options{ZKCluster: e.zk.Addr, ZKPath: e.cluster.ZKPath(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	createTestTable(t, ctx, other, "db2", "made_elsewhere", 4, 1)
	for {
		if tb, err := e.client.Table("db2", "made_elsewhere"); err == nil {
			if tb.PartitionCount != 4 {
				t.Fatalf("partitions %d", tb.PartitionCount)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("catalog never saw the table created by another client")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := other.DropTable(ctx, "db2", "made_elsewhere"); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := e.client.Table("db2", "made_elsewhere"); errors.Is(err, openmldb.ErrTableNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("catalog never saw the drop")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestIntegrationFaults moves a leader and stops a tablet while writing: every row reported
// written must be readable; rows reported failed are counted, never silently lost.
func TestIntegrationFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 3, AutoFailover: true}, 64)
	tb := createTestTable(t, ctx, e.client, "db3", "t3", 8, 3)

	// The writer keeps writing batches until the faults are done and a few more batches passed.
	const batch = 200
	var (
		mu      sync.Mutex
		results []error
		done    = make(chan struct{})
		batches = make(chan int, 1000)
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			rows := make([]openmldb.Row, batch)
			for i := range rows {
				rows[i] = testRow(n*batch + i)
			}
			tbl, err := e.client.Table("db3", "t3")
			if err != nil {
				tbl = tb
			}
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			errs := e.client.Write(wctx, tbl, rows, openmldb.WriteOptions{})
			wcancel()
			mu.Lock()
			results = append(results, errs...)
			mu.Unlock()
			batches <- n
		}
	}()
	waitBatches := func(k int) {
		for range k {
			select {
			case <-batches:
			case <-ctx.Done():
				t.Fatal("writer stuck")
			}
		}
	}
	waitBatches(3)
	e.cluster.StallPuts(100 * time.Millisecond) // hold Puts in flight while leaders move
	for pid := uint32(0); pid < 8; pid++ {
		leader, err := e.cluster.Leader("db3", "t3", pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cluster.MoveLeader("db3", "t3", pid, (leader+1)%3); err != nil {
			t.Fatal(err)
		}
	}
	waitBatches(3)
	e.cluster.StallPuts(100 * time.Millisecond)
	if err := e.cluster.StopTablet(2); err != nil {
		t.Fatal(err)
	}
	waitBatches(5)
	close(done)
	wg.Wait()
	total := len(results)

	tbl, err := e.client.Table("db3", "t3")
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, ctx, e.client, tbl)
	failed := 0
	for i, err := range results {
		if err != nil {
			failed++
			continue
		}
		r, ok := got[int64(i)]
		if !ok || !sameRow(r, testRow(i)) {
			t.Fatalf("row %d reported written but not readable (present %v)", i, ok)
		}
	}
	t.Logf("faults: %d rows written, %d reported failed, %d readable", total-failed, failed, len(got))
}

func TestIntegrationStandaloneAndScan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1, RequireAuth: true, Password: "secret"}, 0)
	if err := e.client.CreateDatabase(ctx, "sdb", false); err != nil {
		t.Fatal(err)
	}
	cols := []openmldb.Column{
		{Name: "c1_int16", Type: openmldb.TypeSmallInt}, {Name: "c2_int32", Type: openmldb.TypeInt},
		{Name: "c3_int64", Type: openmldb.TypeBigInt}, {Name: "c4_float", Type: openmldb.TypeFloat},
		{Name: "c5_double", Type: openmldb.TypeDouble}, {Name: "c6_boolean", Type: openmldb.TypeBool},
		{Name: "c7_string", Type: openmldb.TypeVarchar}, {Name: "c8_date", Type: openmldb.TypeDate},
		{Name: "c9_timestamp", Type: openmldb.TypeTimestamp},
	}
	// No index: the nameserver's default rule (first non-float column) applies.
	tb, err := e.client.CreateTable(ctx, openmldb.TableSpec{DB: "sdb", Name: "seed", Columns: cols})
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Indexes) != 1 || tb.Indexes[0].Keys[0] != "c1_int16" {
		t.Fatalf("default index %+v", tb.Indexes)
	}
	seed := openmldb.Row{openmldb.Int(1), openmldb.Int(2), openmldb.Int(3), openmldb.Float(float64(float32(4.4))), openmldb.Float(5.555),
		openmldb.Bool(true), openmldb.Str("c77777"), openmldb.Date(2022, 4, 27), openmldb.Int(1651051906000)}
	nulls := make(openmldb.Row, len(cols))
	for _, err := range e.client.WriteTable(ctx, "sdb", "seed", []openmldb.Row{seed, nulls}, openmldb.WriteOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := openmldb.ScanTable(ctx, e.client, "sdb", "seed", false, &out); err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("not JSON: %s", sc.Bytes())
		}
		lines[sc.Text()] = true
	}
	wantSeed := `{"c1_int16":1,"c2_int32":2,"c3_int64":3,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":"2022-04-27","c9_timestamp":1651051906000}`
	wantNull := `{"c1_int16":null,"c2_int32":null,"c3_int64":null,"c4_float":null,"c5_double":null,"c6_boolean":null,"c7_string":null,"c8_date":null,"c9_timestamp":null}`
	if len(lines) != 2 || !lines[wantSeed] || !lines[wantNull] {
		t.Fatalf("scan output:\n%s", strings.Join(keys(lines), "\n"))
	}
	out.Reset()
	if err := openmldb.ScanTable(ctx, e.client, "sdb", "seed", true, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "01013600000000fe0100020000000300000000000000cdcc8c40b81e85eb51381640011b037a00d0c35c6a8001000030633737373737\n") {
		t.Fatalf("raw scan output:\n%s", out.String())
	}
	_ = hex.EncodeToString

	// A wrong password is refused by the framework (ERPCAUTH) or the connection is closed.
	bad, err := openmldb.Open(ctx, openmldb.Options{Nameserver: e.cluster.Nameserver(), Password: "wrong", Logger: quiet, RPCTimeout: 5 * time.Second})
	if err == nil {
		bad.Close()
		t.Fatal("open with a wrong password succeeded")
	}
	var re *openmldb.RPCError
	var conn *openmldb.ConnError
	if !(errors.As(err, &re) && re.Code == openmldb.ErrCodeRPCAuth) && !errors.As(err, &conn) {
		t.Fatalf("wrong password: %v", err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// BenchmarkWrite measures pipelined Put throughput into the in-process cluster (3 tablets,
// 8 partitions, one index) with 1, 8 and 64 Puts in flight; reported as rows/s.
func BenchmarkWrite(b *testing.B) {
	for _, inflight := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			zks := zktest.StartT(b)
			cl, err := openmldbtest.Start(ctx, openmldbtest.Options{ZK: zks.Addr, Tablets: 3})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			c, err := openmldb.Open(ctx, openmldb.Options{ZKCluster: zks.Addr, ZKPath: cl.ZKPath(), MaxInFlight: inflight, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.CreateDatabase(ctx, "bench", true); err != nil {
				b.Fatal(err)
			}
			tb, err := c.CreateTable(ctx, openmldb.TableSpec{DB: "bench", Name: "t", Columns: testColumns,
				Indexes: testIndexes[:1], PartitionNum: 8, ReplicaNum: 1})
			if err != nil {
				b.Fatal(err)
			}
			const batch = 1000
			rows := make([]openmldb.Row, batch)
			b.ResetTimer()
			start := time.Now()
			written := 0
			for i := 0; i < b.N; i++ {
				for j := range rows {
					// testRow's c2 (-7919 i) leaves INT's range past 271,000: ids repeat after 200,000.
					rows[j] = testRow((i*batch + j) % 200_000)
				}
				for _, err := range c.Write(ctx, tb, rows, openmldb.WriteOptions{}) {
					if err != nil {
						b.Fatal(err)
					}
				}
				written += batch
			}
			b.ReportMetric(float64(written)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

// TestIntegrationLeaderlessPartition stops a tablet without failover: rows hashing to the
// partitions it led fail within the deadline and are reported; all others are stored.
func TestIntegrationLeaderlessPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 3}, 0)
	tb := createTestTable(t, ctx, e.client, "db4", "t4", 8, 1)
	dead := map[uint32]bool{}
	for pid := uint32(0); pid < 8; pid++ {
		if l, err := e.cluster.Leader("db4", "t4", pid); err == nil && l == 2 {
			dead[pid] = true
		}
	}
	if len(dead) == 0 {
		t.Skip("tablet 2 leads no partition")
	}
	if err := e.cluster.StopTablet(2); err != nil {
		t.Fatal(err)
	}
	rows := make([]openmldb.Row, 300)
	for i := range rows {
		rows[i] = testRow(i)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	errs := e.client.Write(wctx, tb, rows, openmldb.WriteOptions{})
	wcancel()
	ok := 0
	for i, err := range errs {
		k0, _ := tb.IndexKey(0, rows[i])
		k1, _ := tb.IndexKey(1, rows[i])
		touchesDead := dead[openmldb.PartitionOf(k0, 8)] || dead[openmldb.PartitionOf(k1, 8)]
		if touchesDead != (err != nil) {
			t.Fatalf("row %d: touches stopped tablet %v, error %v", i, touchesDead, err)
		}
		if err == nil {
			ok++
		}
	}
	if ok == 0 {
		t.Fatal("no row written")
	}
}

// WriteAsync calls sharing a WriteBatch send nothing until Flush: no Put completes before it,
// and every row is stored after it.
func TestIntegrationWriteBatchWaitsForFlush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	tb := createTestTable(t, ctx, e.client, "bdb", "batched", 1, 1)
	// A first write dials the tablet: Puts waiting for a dial go out from the dialling goroutine.
	for _, err := range e.client.Write(ctx, tb, []openmldb.Row{testRow(100)}, openmldb.WriteOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	openmldb.WaitConnsIdle(e.client) // else the first write's writer can take the batch's frames
	batch := &openmldb.WriteBatch{}
	results := make(chan []error, 2)
	for call := range 2 {
		rows := []openmldb.Row{testRow(call*10 + 1), testRow(call*10 + 2), testRow(call*10 + 3)}
		e.client.WriteAsync(ctx, tb, rows, openmldb.WriteOptions{Batch: batch}, func(errs []error) { results <- errs })
	}
	select {
	case errs := <-results:
		t.Fatalf("a batched write completed before Flush: %v", errs)
	case <-time.After(300 * time.Millisecond):
	}
	batch.Flush()
	for range 2 {
		select {
		case errs := <-results:
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		case <-ctx.Done():
			t.Fatal("batched writes did not complete after Flush")
		}
	}
	if got := readAll(t, ctx, e.client, tb); len(got) != 7 {
		t.Fatalf("table holds %d rows, want 7", len(got))
	}
}

// Options.OnRPC is told of every call: each Put with its tablet endpoint and no error, and a call
// that outlives its deadline with ErrCallTimeout.
func TestIntegrationOnRPCObservesEveryCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	createTestTable(t, ctx, e.client, "obs", "t", 1, 1)
	type call struct {
		endpoint string
		d        time.Duration
		err      error
	}
	var mu sync.Mutex
	var calls []call
	c, err := openmldb.Open(ctx, openmldb.Options{Nameserver: e.cluster.Nameserver(), Logger: quiet, RPCTimeout: 300 * time.Millisecond,
		OnRPC: func(endpoint string, d time.Duration, err error) {
			mu.Lock()
			calls = append(calls, call{endpoint, d, err})
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tablet := e.cluster.Tablets()[0]
	puts := func() (ok, timedOut int) {
		mu.Lock()
		defer mu.Unlock()
		for _, cl := range calls {
			switch {
			case cl.endpoint != tablet:
			case cl.err == nil && cl.d > 0:
				ok++
			case errors.Is(cl.err, openmldb.ErrCallTimeout):
				timedOut++
			}
		}
		return ok, timedOut
	}
	rows := make([]openmldb.Row, 20)
	for i := range rows {
		rows[i] = testRow(i)
	}
	for _, err := range c.WriteTable(ctx, "obs", "t", rows, openmldb.WriteOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := puts(); ok < len(rows) {
		t.Fatalf("observed %d successful calls to the tablet, want at least %d", ok, len(rows))
	}
	e.cluster.StallPuts(2 * time.Second)
	defer e.cluster.StallPuts(0)
	wctx, wcancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer wcancel()
	for range c.WriteTable(wctx, "obs", "t", rows[:1], openmldb.WriteOptions{}) {
	}
	if _, timedOut := puts(); timedOut == 0 {
		t.Fatal("a Put past its deadline was not observed as ErrCallTimeout")
	}
}

// Paging through a key whose rows share timestamps returns every row exactly once: a page
// boundary inside a run of equal timestamps resumes by position. Here 3,600 rows of one key on an
// index without a TS column run their Put times into the client's lead bound (maxStampLead), so
// most of them share one; concurrent writes also store timestamps out of order.
func TestIntegrationTraversePagesThroughEqualTimestamps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	if err := e.client.CreateDatabase(ctx, "tdb", true); err != nil {
		t.Fatal(err)
	}
	tb, err := e.client.CreateTable(ctx, openmldb.TableSpec{DB: "tdb", Name: "stamped", Columns: testColumns,
		Indexes: []openmldb.Index{{Keys: []string{"c2"}}}, PartitionNum: 1, ReplicaNum: 1})
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWrite, writes = 4, 450, 2
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range writes {
				rows := make([]openmldb.Row, perWrite)
				for i := range rows {
					rows[i] = testRow((w*writes+k)*perWrite + i)
					rows[i][2] = openmldb.Int(7) // one key for every row
				}
				for i, err := range e.client.Write(ctx, tb, rows, openmldb.WriteOptions{}) {
					if err != nil {
						t.Errorf("row %d: %v", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if got, want := len(readAll(t, ctx, e.client, tb)), writers*writes*perWrite; got != want {
		t.Fatalf("traverse read %d rows, want %d", got, want)
	}
}

// Writes issued one after another while the tablet's connection is still being dialed keep
// their order on the wire: they queue on the connection being dialed instead of each waiting for
// the dial on a goroutine of its own (which raced, and let later rows be stored first).
func TestWritesQueuedOnADialKeepTheirOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	createTestTable(t, ctx, e.client, "odb", "ordered", 1, 1)
	for trial := range 5 {
		c, err := openmldb.Open(ctx, openmldb.Options{Nameserver: e.cluster.Nameserver(), Logger: quiet, RPCTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		openmldb.SetBeforeDial(c, func() { time.Sleep(30 * time.Millisecond) })
		tb, err := c.Table("odb", "ordered")
		if err != nil {
			t.Fatal(err)
		}
		const writes, rows = 10, 20
		results := make(chan []error, writes)
		for w := range writes {
			batch := make([]openmldb.Row, rows)
			for i := range batch {
				batch[i] = testRow(trial*writes*rows + w*rows + i)
			}
			c.WriteAsync(ctx, tb, batch, openmldb.WriteOptions{}, func(errs []error) { results <- errs })
		}
		for range writes {
			for _, err := range <-results {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		c.Close()
	}
	stored, err := e.cluster.Rows("odb", "ordered")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := e.client.Table("odb", "ordered")
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range stored {
		r, err := openmldb.DecodeRow(tb.Columns, b)
		if err != nil {
			t.Fatal(err)
		}
		if r[0].I != int64(i) {
			t.Fatalf("row %d stored at position %d: Writes issued while the connection was dialed were reordered", r[0].I, i)
		}
	}
	if len(stored) != 5*10*20 {
		t.Fatalf("%d rows stored, want %d", len(stored), 5*10*20)
	}
}
