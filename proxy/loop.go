package proxy

import (
	"context"
	"io"
	"net"
	"sync"

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
		l = &Loop{el: el, ctx: p.ctx}
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

// hookConn is a connection a hook attached to a loop.
type hookConn struct {
	loop   *Loop
	feed   func(data []byte) int
	closed func(err error)
	// gone is set (on the loop) when the connection has closed: gnet's Write would then write to
	// a released descriptor, which another connection may have been given meanwhile.
	gone bool
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
	write = func(b []byte) error {
		if hc.gone {
			return net.ErrClosed
		}
		_, err := gc.Write(b)
		return err
	}
	return write, func() { _ = gc.Close() }, nil
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
	if err == nil {
		err = io.EOF
	}
	h.closed(err)
}
