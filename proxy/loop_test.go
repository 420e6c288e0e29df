package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// serveConns accepts connections on a loopback port until the test ends, hands each to handle
// on a goroutine of its own, and closes them when the test ends; it returns the address.
func serveConns(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// echoServer returns the address of a TCP server that sends back whatever it reads, one byte
// per write, so the reader sees frames arrive in pieces.
func echoServer(t *testing.T) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		buf := make([]byte, 256)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			for _, b := range buf[:n] {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
}

// echoHook keeps a connection of its own to an echo server on each client connection's loop
// (attached in Begin, off the loop). A Produce's FinishAsync writes its correlation id there,
// on the loop; the echo, read by the loop, completes the request: its response carries the echoed
// id as throttle.
type echoHook struct {
	echo string

	mu      sync.Mutex
	write   func([]byte) error
	waiting map[uint32]func(uint32) // by id: completes the request (on the loop)
	next    uint32
	pending []byte // echoed bytes not consumed yet (on the loop)
}

func (h *echoHook) Intercepts(key int16) bool { return key == 0 }

func (h *echoHook) Begin(_ context.Context, c ConnInfo, _ kmsg.Request) Step {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.write == nil {
		nc, err := net.Dial("tcp", h.echo)
		if err != nil {
			panic(err)
		}
		h.write, _, err = c.Loop.Attach(nc, h.feed, func(error) {})
		nc.Close()
		if err != nil {
			panic(err)
		}
	}
	h.next++
	id := h.next
	return Step{FinishAsync: func(_ context.Context, resp kmsg.Response, done func(kmsg.Response)) {
		h.mu.Lock()
		h.waiting[id] = func(echoed uint32) {
			pr := resp.(*kmsg.ProduceResponse)
			pr.ThrottleMillis = int32(echoed)
			done(pr)
		}
		write := h.write
		h.mu.Unlock()
		_ = write(binary.BigEndian.AppendUint32(nil, id))
	}}
}

// feed runs on the loop with the echoed ids.
func (h *echoHook) feed(data []byte) int {
	used := 0
	for ; len(data)-used >= 4; used += 4 {
		id := binary.BigEndian.Uint32(data[used:])
		h.mu.Lock()
		complete := h.waiting[id]
		delete(h.waiting, id)
		h.mu.Unlock()
		complete(id)
	}
	return used
}

// A hook's own connection attached to a client connection's loop carries its traffic: written
// on the loop, read back by the loop (also when its input arrives a byte at a time), and the
// requests it completes are answered in order.
func TestLoopAttachServesHookConnection(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	hook := &echoHook{echo: echoServer(t), waiting: map[uint32]func(uint32){}}
	p, _ := startProxy(t, c.ListenAddrs(), 1, hook)
	rc := dialRaw(t, p.Addr())
	var frames [][]byte
	for i := range 5 {
		frames = append(frames, reqFrame(produceReq("t", 0, -1, "v"), int32(i+1)))
	}
	rc.send(frames...)
	for i := range 5 {
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		corr, r, err := produceResponse(f)
		if err != nil || corr != int32(i+1) || r.ThrottleMillis != int32(i+1) {
			t.Fatalf("response %d: corr %d throttle %d err %v; want the echoed id %d", i+1, corr, r.ThrottleMillis, err, i+1)
		}
	}
}

// Work given to Loop.Run while the loop delivers a hook connection's input runs before that
// delivery ends, on the loop; given at other times it is scheduled.
func TestLoopRunJoinsDelivery(t *testing.T) {
	l := servedLoop(t)
	result := make(chan string, 1)
	err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		ran := false
		l.deliver(func() {
			// From another goroutine, as a completion arriving elsewhere would.
			posted := make(chan struct{})
			go func() {
				_ = l.Run(func() { ran = true })
				close(posted)
			}()
			<-posted
			if ran {
				result <- "posted work ran before the delivery's own work returned"
			}
		})
		if !ran {
			result <- "posted work had not run when the delivery ended"
			return nil
		}
		result <- ""
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-result:
		if msg != "" {
			t.Fatal(msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run the delivery")
	}
	scheduled := make(chan struct{})
	if err := l.Run(func() { close(scheduled) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-scheduled:
	case <-time.After(10 * time.Second):
		t.Fatal("work given outside a delivery never ran")
	}
}

// servedLoop starts a proxy, serves one client request through it and returns that client
// connection's Loop.
func servedLoop(t *testing.T) *Loop {
	t.Helper()
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	p, _ := startProxy(t, c.ListenAddrs(), 1, nil)
	rc := dialRaw(t, p.Addr())
	rc.send(reqFrame(produceReq("t", 0, -1, "v"), 1))
	if _, err := rc.read(); err != nil {
		t.Fatal(err)
	}
	p.loopsMu.Lock()
	defer p.loopsMu.Unlock()
	for _, l := range p.loops {
		return l
	}
	t.Fatal("no Loop made for the client connection")
	return nil
}

// Once a hook connection has closed, writing it fails instead of reaching the descriptor gnet
// released (which a later connection may have been given).
func TestLoopWriteAfterCloseFails(t *testing.T) {
	l := servedLoop(t)
	nc, err := net.Dial("tcp", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	write, closeConn, err := l.Attach(nc, func(data []byte) int { return len(data) }, func(err error) { closed <- err })
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	closeConn()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the hook connection was never reported")
	}
	result := make(chan error, 1)
	if err := l.Run(func() { result <- write([]byte("STALE")) }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close returned %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write task never ran")
	}
}

// stallingPeer accepts connections and reads none of their input until read is closed, then
// reads everything (a hung tablet process, which the kernel keeps connected, and its recovery).
func stallingPeer(t *testing.T, read <-chan struct{}) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		<-read
		_, _ = io.Copy(io.Discard, c)
	})
}

// attachTo attaches a connection to addr to l and returns its write (on the loop, through
// l.Run) and the channel its close is reported on.
func attachTo(t *testing.T, l *Loop, addr string) (func(b []byte) error, <-chan error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	write, closeConn, err := l.Attach(nc, func(data []byte) int { return len(data) }, func(err error) { closed <- err })
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeConn)
	onLoop := func(b []byte) error {
		done := make(chan error, 1)
		if err := l.Run(func() { done <- write(b) }); err != nil {
			return err
		}
		return <-done
	}
	return onLoop, closed
}

// A hook connection whose peer takes none of its output is closed after the stall time, with
// ErrPeerStalled (before, gnet buffered every Put frame for a hung tablet for as long as the
// connection lived); one whose peer reads, slowly, is not; and a write that would buffer more
// than hookMaxOutbound fails.
func TestLoopClosesHookConnectionsWhosePeerStopsReading(t *testing.T) {
	l := servedLoop(t)
	l.stall, l.maxOutbound = 400*time.Millisecond, 32<<20
	hung := make(chan struct{})
	write, closed := attachTo(t, l, stallingPeer(t, hung))
	chunk := make([]byte, 4<<20) // more than the sockets take: the rest waits in gnet's buffer
	if err := write(chunk); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, ErrPeerStalled) {
			t.Fatalf("closed with %v, want ErrPeerStalled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a connection whose peer reads nothing was never closed")
	}
	close(hung)

	// A peer that reads keeps its connection, however long the output takes.
	slowRead := make(chan struct{})
	close(slowRead)
	write, closed = attachTo(t, l, stallingPeer(t, slowRead))
	for range 8 {
		if err := write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-closed:
		t.Fatalf("a connection whose peer reads was closed: %v", err)
	case <-time.After(3 * l.stall):
	}

	// The bound on what is buffered for a peer that does not keep up.
	stuck := make(chan struct{})
	defer close(stuck)
	write, _ = attachTo(t, l, stallingPeer(t, stuck))
	var err error
	for i := 0; i < l.maxOutbound/len(chunk)+8 && err == nil; i++ {
		err = write(chunk)
	}
	if !errors.Is(err, ErrPeerStalled) {
		t.Fatalf("writing past %d MiB for a peer reading nothing: %v, want ErrPeerStalled", l.maxOutbound>>20, err)
	}
}
