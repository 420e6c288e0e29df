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

// While Puts of a lane's writes are in flight on the shared connection (sent before the lane's
// own was up), later Puts follow them there instead of overtaking on the new connection.
func TestLaneWaitsForItsPutsOnTheSharedConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	addr := e.cluster.Tablets()[0]
	l := newTestLane(t)
	onLane, releaseFirst := openmldb.PickLane(e.client, l, addr)
	if onLane {
		t.Fatal("a lane without a connection routed a Put to it")
	}
	l.waitAttached(t, ctx, 1)
	// Wait until the connection is published (attached, then stored).
	deadline := time.Now().Add(time.Second)
	var releases []func()
	for {
		onLane, release := openmldb.PickLane(e.client, l, addr)
		if onLane {
			t.Fatal("a Put took the lane's connection while an earlier one was in flight on the shared one")
		}
		releases = append(releases, release)
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	releaseFirst()
	for _, r := range releases {
		r()
	}
	if onLane, _ := openmldb.PickLane(e.client, l, addr); !onLane {
		t.Fatal("with nothing in flight on the shared connection, the Put did not take the lane's")
	}
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
