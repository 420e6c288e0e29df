package openmldb_test

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// testLane is an event loop for the tests: one goroutine runs its tasks, and a reader goroutine
// per attached connection posts what it reads to it as a task, as a real loop would deliver it.
type testLane struct {
	t        *testing.T
	tasks    chan func()
	done     chan struct{}
	loopID   atomic.Int64
	attached atomic.Int32
	fed      atomic.Int64
	offLoop  atomic.Int32 // writes made off the loop: must stay 0
	written  atomic.Int64 // bytes written to the lane's connections
	mu       sync.Mutex
	conns    []net.Conn
}

func newTestLane(t *testing.T) *testLane {
	l := &testLane{t: t, tasks: make(chan func(), 4096), done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		l.loopID.Store(goroutineID())
		close(started)
		for {
			select {
			case fn := <-l.tasks:
				fn()
			case <-l.done:
				return
			}
		}
	}()
	<-started
	t.Cleanup(func() {
		l.closeConns()
		close(l.done)
	})
	return l
}

// goroutineID reads the calling goroutine's id from its stack header ("goroutine 7 [...").
func goroutineID() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseInt(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

func (l *testLane) onLoop() bool { return goroutineID() == l.loopID.Load() }

func (l *testLane) Run(fn func()) error {
	select {
	case l.tasks <- fn:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

func (l *testLane) Attach(nc net.Conn, feed func([]byte) int, closed func(error)) (func([]byte) error, func(), error) {
	// The caller closes nc when Attach returns: keep a duplicate of the socket, as gnet does.
	f, err := nc.(*net.TCPConn).File()
	if err != nil {
		return nil, nil, err
	}
	dup, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	l.conns = append(l.conns, dup)
	l.mu.Unlock()
	l.attached.Add(1)
	var pending []byte // only touched on the loop
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := dup.Read(buf)
			if err != nil {
				_ = l.Run(func() { closed(err) })
				return
			}
			data := append([]byte(nil), buf[:n]...)
			_ = l.Run(func() {
				l.fed.Add(int64(len(data)))
				pending = append(pending, data...)
				pending = pending[feed(pending):]
			})
		}
	}()
	write := func(b []byte) error {
		if !l.onLoop() {
			l.offLoop.Add(1)
		}
		l.written.Add(int64(len(b)))
		_, err := dup.Write(b)
		return err
	}
	return write, func() { dup.Close() }, nil
}

// waitAttached waits until the lane has attached n connections.
func (l *testLane) waitAttached(t *testing.T, ctx context.Context, n int32) {
	t.Helper()
	for l.attached.Load() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("the lane attached %d connections, want %d", l.attached.Load(), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (l *testLane) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// writeOnLoop runs WriteAsync on the lane's loop, as the proxy's event loop does, and waits for
// its results; it also reports whether they were delivered on the loop.
func writeOnLoop(t *testing.T, ctx context.Context, c *openmldb.Client, l *testLane, tb *openmldb.Table, rows []openmldb.Row) ([]error, bool) {
	t.Helper()
	type result struct {
		errs   []error
		onLoop bool
	}
	ch := make(chan result, 1)
	if err := l.Run(func() {
		c.WriteAsync(ctx, tb, rows, openmldb.WriteOptions{Lane: l, OnLane: true}, func(errs []error) {
			ch <- result{errs, l.onLoop()}
		})
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r.errs, r.onLoop
	case <-ctx.Done():
		t.Fatal("write through the lane did not complete")
		return nil, false
	}
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
}

// Writes issued on a lane's loop travel on the lane's own connection once it is up: their
// responses are read by the loop and their completions run there, and nothing writes the
// lane's socket from another goroutine. Writes naming the lane from elsewhere use it too.
func TestLaneWritesCompleteOnTheLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	tb := createTestTable(t, ctx, e.client, "ldb", "laned", 1, 1)
	l := newTestLane(t)

	// The first write finds no lane connection: it takes the shared one and starts the dial.
	errs, _ := writeOnLoop(t, ctx, e.client, l, tb, []openmldb.Row{testRow(0)})
	noErrors(t, errs)
	l.waitAttached(t, ctx, 1)
	var rows []openmldb.Row
	for i := 1; i <= 200; i++ {
		rows = append(rows, testRow(i))
	}
	before := l.fed.Load()
	for i := 0; i < len(rows); i += 20 {
		errs, onLoop := writeOnLoop(t, ctx, e.client, l, tb, rows[i:i+20])
		noErrors(t, errs)
		if !onLoop {
			t.Fatalf("write of rows %d..%d completed off the loop: its responses did not come through the lane", i+1, i+20)
		}
	}
	if l.fed.Load() == before {
		t.Fatal("the lane's loop read no responses")
	}
	// From another goroutine: the Puts are queued on the lane's connection and written by a task.
	var more []openmldb.Row
	for i := 201; i <= 260; i++ {
		more = append(more, testRow(i))
	}
	noErrors(t, e.client.Write(ctx, tb, more, openmldb.WriteOptions{Lane: l}))
	if n := l.offLoop.Load(); n != 0 {
		t.Fatalf("%d writes to the lane's socket came from off its loop", n)
	}
	if got := readAll(t, ctx, e.client, tb); len(got) != 261 {
		t.Fatalf("table holds %d rows, want 261", len(got))
	}
	if n := l.attached.Load(); n != 1 {
		t.Fatalf("lane attached %d connections, want 1", n)
	}
}

// startOnLoop runs WriteAsync on the lane's loop without waiting; its results arrive on the
// returned channel.
func startOnLoop(t *testing.T, ctx context.Context, c *openmldb.Client, l *testLane, tb *openmldb.Table, rows []openmldb.Row) <-chan []error {
	t.Helper()
	ch := make(chan []error, 1)
	if err := l.Run(func() {
		c.WriteAsync(ctx, tb, rows, openmldb.WriteOptions{Lane: l, OnLane: true}, func(errs []error) { ch <- errs })
	}); err != nil {
		t.Fatal(err)
	}
	return ch
}

// orderCase writes row 1 through a lane whose connection is not up (it takes the shared one,
// where the cluster stalls it), then row 2 once the lane's connection is up: row 2 must be held
// on the lane's connection, not written, until row 1 is over, and the rows are stored in order.
// With firstExpires, row 1's caller gives up (its context expires) while the Put is stalled.
func orderCase(t *testing.T, firstExpires bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	if err := e.client.CreateDatabase(ctx, "ldb", true); err != nil {
		t.Fatal(err)
	}
	// No TS column: rows are kept in the order the tablet stored them.
	tb, err := e.client.CreateTable(ctx, openmldb.TableSpec{DB: "ldb", Name: "ordered", Columns: testColumns,
		Indexes: []openmldb.Index{{Keys: []string{"id"}}}, PartitionNum: 1, ReplicaNum: 1})
	if err != nil {
		t.Fatal(err)
	}
	addr := e.cluster.Tablets()[0]
	// Open the shared connection first: otherwise row 1 finds none, moves to a goroutine, and
	// takes the lane's connection if that is up by the time the goroutine runs.
	if _, err := e.client.Count(ctx, tb, 0, "warm-up"); err != nil {
		t.Fatal(err)
	}
	l := newTestLane(t)
	e.cluster.StallPuts(time.Minute)
	fctx, fcancel := context.WithCancel(ctx)
	if firstExpires {
		fctx, fcancel = context.WithTimeout(ctx, 300*time.Millisecond)
	}
	defer fcancel()
	first := startOnLoop(t, fctx, e.client, l, tb, []openmldb.Row{testRow(1)})
	l.waitAttached(t, ctx, 1)
	for !openmldb.LaneUp(e.client, l, addr) {
		if ctx.Err() != nil {
			t.Fatal("the lane's connection was never published")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := startOnLoop(t, ctx, e.client, l, tb, []openmldb.Row{testRow(2)})
	if firstExpires {
		// The first write gives up while its Put is still at the tablet.
		select {
		case errs := <-first:
			if errs[0] == nil {
				t.Fatal("the first write succeeded while its Put was stalled")
			}
		case <-ctx.Done():
			t.Fatal("the first write did not expire")
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := l.written.Load(); n != 0 {
		t.Fatalf("the lane's connection carried %d bytes while the lane's first Put was not over on the shared one", n)
	}
	e.cluster.StallPuts(0)
	if !firstExpires {
		noErrors(t, <-first)
	}
	select {
	case errs := <-second:
		noErrors(t, errs)
	case <-ctx.Done():
		t.Fatal("the held write was never sent")
	}
	if l.written.Load() == 0 {
		t.Fatal("the second write did not take the lane's connection")
	}
	rows, err := e.cluster.Rows("ldb", "ordered")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, b := range rows {
		r, err := openmldb.DecodeRow(tb.Columns, b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r[0].I)
	}
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("stored ids in insertion order %v, want [1 2]", ids)
	}
}

// A lane's Puts wait on its new connection until its earlier Puts on the shared one are answered.
func TestLaneHoldsItsPutsUntilSharedOnesAreOver(t *testing.T) {
	orderCase(t, false)
}

// A shared-connection Put whose caller gave up (its context expired) is not over: it may still
// be stored, so the lane keeps holding until the tablet answers it.
func TestLaneKeepsHoldingAfterASharedPutExpires(t *testing.T) {
	orderCase(t, true)
}

// A lane connection that the loop closes is replaced: writes meanwhile take the shared connection
// and the lane dials again.
func TestLaneRedialsAfterItsConnectionCloses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	tb := createTestTable(t, ctx, e.client, "ldb", "redial", 1, 1)
	l := newTestLane(t)
	next := 0
	write := func() {
		t.Helper()
		errs, _ := writeOnLoop(t, ctx, e.client, l, tb, []openmldb.Row{testRow(next)})
		noErrors(t, errs)
		next++
	}
	write()
	l.waitAttached(t, ctx, 1)
	write()
	l.closeConns()
	// Writes go on (a Put caught on the closing connection is retried) and the lane redials.
	for l.attached.Load() < 2 {
		if ctx.Err() != nil {
			t.Fatal("the lane did not dial again")
		}
		write()
		time.Sleep(50 * time.Millisecond)
	}
	write()
	if got := readAll(t, ctx, e.client, tb); len(got) != next {
		t.Fatalf("table holds %d rows, want %d", len(got), next)
	}
}
