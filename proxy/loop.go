package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Loop is one gnet event loop, as a hook sees it (ConnInfo.Loop): a place where connections of
// the hook's own can live beside the client connections, so that their responses are read by
// the loop that runs the client's requests, with no goroutine in between. It is an
// openmldb.Lane: the tee's OpenMLDB writes for a client connection travel on its loop's own
// tablet connections, and their completions run on the loop.
type Loop struct {
	el  gnet.EventLoop
	ctx context.Context
	// stall is how long a hook connection's peer may take none of its buffered output before
	// the loop closes the connection, and maxOutbound the most a write may leave buffered
	// (hookStall, hookMaxOutbound; tests lower them).
	stall       time.Duration
	maxOutbound int

	mu         sync.Mutex
	dispatched bool     // the loop is delivering a hook connection's input
	queue      []func() // work posted meanwhile, run before the delivery ends

	// sessions are the loop's open client connections; used on the loop only.
	sessions map[*session]struct{}
}

// unsent sums the loop's client connections' answers not yet taken by their sockets (bytes)
// and how many connections hold some; run it on the loop. For a TLS client that is what its
// bridge has not written to the TLS connection yet.
func (l *Loop) unsent() (bytes, conns int) {
	for s := range l.sessions {
		n := int64(s.c.OutboundBuffered())
		if s.bridge != nil && !s.bridge.ended.Load() {
			n = s.sent - s.bridge.delivered.Load()
		}
		if n > 0 {
			bytes += int(n)
			conns++
		}
	}
	return bytes, conns
}

// loopOf returns the Loop of el, made on first use.
func (p *Proxy) loopOf(el gnet.EventLoop) *Loop {
	p.loopsMu.Lock()
	defer p.loopsMu.Unlock()
	if p.loops == nil {
		p.loops = map[gnet.EventLoop]*Loop{}
	}
	l := p.loops[el]
	if l == nil {
		l = &Loop{el: el, ctx: p.ctx, stall: hookStall, maxOutbound: hookMaxOutbound}
		p.loops[el] = l
	}
	return l
}

// Run runs fn on the loop. While the loop is delivering a hook connection's input, fn joins
// the work it runs before it returns; otherwise it is scheduled, which wakes the loop.
func (l *Loop) Run(fn func()) error {
	l.mu.Lock()
	if l.dispatched {
		l.queue = append(l.queue, fn)
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	return l.el.Execute(l.ctx, gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}

// deliver runs fn (on the loop), then the work posted with Run meanwhile. A response read from a
// tablet completes a Produce whose answer is then written at once, without a second trip
// through the loop's task queue.
func (l *Loop) deliver(fn func()) {
	l.mu.Lock()
	l.dispatched = true
	l.mu.Unlock()
	fn()
	for {
		l.mu.Lock()
		q := l.queue
		l.queue = nil
		if len(q) == 0 {
			l.dispatched = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		for _, f := range q {
			f()
		}
	}
}

// A hook connection's output is buffered by gnet without bound, and its writer (the tee's
// OpenMLDB client) gives up on what it wrote after its own timeouts, not when the bytes leave:
// a tablet that keeps its connection open but stops reading (a hung process) would make the
// buffer grow with every Produce for as long as the connection lives. So the loop closes a hook
// connection whose peer has taken none of its output for hookStall, and refuses a write that
// would buffer more than hookMaxOutbound (a peer reading, but far slower than it is written).
const (
	hookStall       = 10 * time.Second
	hookMaxOutbound = 256 << 20
)

// ErrPeerStalled is what a hook connection's closed gets when the loop closed it because its peer
// took none of its output for a while.
var ErrPeerStalled = errors.New("peer took none of the connection's output")

// hookConn is a connection a hook attached to a loop.
type hookConn struct {
	loop   *Loop
	feed   func(data []byte) int
	closed func(err error)
	// gone is set (on the loop) when the connection has closed: gnet's Write would then write to
	// a released descriptor, which another connection may have been given meanwhile.
	gone bool

	// The stall watch (on the loop): bytes handed to gnet, how many of them the peer had taken
	// at the last look, and when that last grew; closeErr is what closed is told.
	gc           gnet.Conn
	written      int64
	taken        int64
	lastProgress time.Time
	watching     bool
	closeErr     error
}

// Attach hands nc to the loop and returns when the loop serves it; call it off the loop. The loop
// gives feed the input it has not consumed yet, and calls closed once when the connection ends.
// write must be called on the loop only; close from anywhere. The loop keeps a duplicate of nc's
// socket: close nc after Attach returns.
func (l *Loop) Attach(nc net.Conn, feed func(data []byte) int, closed func(err error)) (write func(b []byte) error, close func(), err error) {
	hc := &hookConn{loop: l, feed: feed, closed: closed}
	res, err := l.el.Enroll(gnet.NewContext(l.ctx, hc), nc)
	if err != nil {
		return nil, nil, err
	}
	var r gnet.RegisteredResult
	select {
	case r = <-res:
	case <-l.ctx.Done():
		// The engine is stopping: a connection it has not opened yet never will be.
		return nil, nil, l.ctx.Err()
	}
	if r.Err != nil {
		return nil, nil, r.Err
	}
	gc := r.Conn
	hc.gc = gc
	write = func(b []byte) error {
		if hc.gone {
			return net.ErrClosed
		}
		if out := gc.OutboundBuffered(); out+len(b) > l.maxOutbound {
			return fmt.Errorf("%d bytes already buffered for a peer reading far slower than it is written: %w", out, ErrPeerStalled)
		}
		_, err := gc.Write(b)
		hc.written += int64(len(b))
		if err == nil && !hc.watching && gc.OutboundBuffered() > 0 {
			hc.watching = true
			hc.taken, hc.lastProgress = hc.written-int64(gc.OutboundBuffered()), time.Now()
			hc.watchLater()
		}
		return err
	}
	return write, func() { _ = gc.Close() }, nil
}

// watchLater looks at the connection's output again a quarter of the stall time from now.
func (h *hookConn) watchLater() {
	time.AfterFunc(h.loop.stall/4, func() {
		_ = h.loop.Run(h.watch) // fails only when the engine stops, whose close ends the connection
	})
}

// watch (on the loop) closes the connection if its peer has taken none of its output for the
// stall time, and keeps watching while output is buffered.
func (h *hookConn) watch() {
	if h.gone {
		h.watching = false
		return
	}
	out := int64(h.gc.OutboundBuffered())
	if out == 0 {
		h.watching = false
		return
	}
	if taken := h.written - out; taken > h.taken {
		h.taken, h.lastProgress = taken, time.Now()
	} else if time.Since(h.lastProgress) >= h.loop.stall {
		h.watching = false
		h.closeErr = fmt.Errorf("%w for %v (%d bytes waiting)", ErrPeerStalled, h.loop.stall, out)
		_ = h.gc.Close()
		return
	}
	h.watchLater()
}

// onTraffic hands a hook connection's input to its feed.
func (h *hookConn) onTraffic(c gnet.Conn) gnet.Action {
	data, err := c.Peek(-1)
	if err != nil || len(data) == 0 {
		return gnet.None
	}
	h.loop.deliver(func() {
		// Discard(0) would empty the whole buffer: a partial frame must stay for the next read.
		if n := h.feed(data); n > 0 {
			_, _ = c.Discard(n)
		}
	})
	return gnet.None
}

// onClose tells the hook its connection ended.
func (h *hookConn) onClose(err error) {
	h.gone = true
	if h.closeErr != nil {
		err = h.closeErr
	}
	if err == nil {
		err = io.EOF
	}
	h.closed(err)
}
