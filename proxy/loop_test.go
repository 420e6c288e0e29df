package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// echoServer returns the address of a TCP server that sends back whatever it reads, one byte
// per write, so the reader sees frames arrive in pieces.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
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
			}()
		}
	}()
	return ln.Addr().String()
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
