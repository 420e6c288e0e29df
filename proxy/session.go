package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
)

const (
	// minRequestFrame is the smallest request payload: key, version, correlation id, client id length.
	minRequestFrame = 10
	// maxResponseFrame is a sanity bound on broker responses (clients bound fetch sizes themselves).
	maxResponseFrame = 1 << 30
	// streamMin is the smallest request frame forwarded while it still arrives; smaller ones are
	// taken whole.
	streamMin = 32 << 10
	// maxFinishes bounds the hook Finishes running at once for one connection: enough for a
	// producer's five in-flight Produce requests per broker with room to spare.
	maxFinishes = 8
	// gatherInitial is the most memory set aside for a gathered frame before its bytes arrive.
	gatherInitial = 4 << 20
	// passMinResponse is the smallest broker response passed on while it still arrives (when it
	// is written unchanged, startPassing); smaller ones are taken whole.
	passMinResponse = 1 << 20
)

// session is one client connection and its upstream connection. The upstream connection is
// enrolled into the client's event loop, so both directions run on that loop without locks or
// hand-offs: a request is written to the broker socket from the client's OnTraffic, a response to
// the client socket from the upstream's OnTraffic (gnet buffers what the kernel does not take).
// Only the dial and hook work (Begin, Finish) run on other goroutines, and they come back to the
// loop with EventLoop.Execute; a LoopBeginner's cheap Begins and FinishAsync run on the loop.
// Every field is owned by the loop.
type session struct {
	p      *Proxy
	c      gnet.Conn
	node   int32
	remote string
	ctx    context.Context
	cancel context.CancelFunc
	// bridge is a TLS client's bridge (nil for plain TCP), and sent the bytes written to c: what
	// the bridge has not delivered of them is still the proxy's to send (see Loop.unsent).
	bridge *bridgeState
	sent   int64

	up     gnet.Conn // nil until the dial completes
	closed bool
	// failing: fail was called and the connection is closing (gnet closes it later, from its
	// queue); nothing more of the client's is read or forwarded meanwhile.
	failing  bool
	pend     []byte     // request bytes waiting for the dial or for a running hook
	hooks    []hookItem // intercepted requests, each placed at an offset of pend
	hookBusy bool       // a Begin runs: later requests wait in pend
	slots    fifo       // every expected response, in request order
	inflight fifo       // slots whose response comes from the broker, in forwarding order
	free     []*slot
	rest     int    // bytes of a streamed request frame still to forward
	gather   []byte // a large request frame taken whole, filled as it arrives
	gatherTo int    // the gathered frame's full length; 0 when none is being gathered
	finRuns  int    // Finishes running now (at most maxFinishes)
	// passing is the slot of a broker response being passed on as it arrives, and passLeft its
	// bytes still to come (startPassing).
	passing  *slot
	passLeft int
	begins   worker[hookItem]
	finishes worker[*slot]
	serial   Serial // ConnInfo.Serial
	loop     *Loop  // ConnInfo.Loop: the client connection's event loop

	// Limits (limits.go): bytes reserved for the frame being read, why reading is paused (0: not
	// paused), whether a Wake is on its way, and the socket read switch (made on first pause).
	reserved    int64
	pauseWhy    uint8
	wakePending bool
	// outboundWake: a timer will wake the session to look at its output buffer again;
	// upstreamWake, at its broker connection's.
	outboundWake, upstreamWake bool
	// The broker connection is not read while the client's unread responses are past
	// MaxOutboundPerConnection (upPaused); upWake: a timer will wake it to look again.
	upPaused, upWake bool
	upPauser         *readPauser
	pauser           *readPauser
	pauseErr         error

	// Operations (ops.go): when the connection opened, requests read, the broker's address.
	openedAt time.Time
	requests int64
	upAddr   string
}

// upstream is the context of a session's broker connection.
type upstream struct {
	s *session
	// opened: upOpened took the connection (and counted it open); one refused because the
	// client had already closed is closed by gnet with OnClose all the same, and must not be
	// uncounted.
	opened bool
}

// hookItem is an intercepted request waiting for its turn.
type hookItem struct {
	pos int // offset in pend: bytes before it are forwarded before Begin runs
	// frame goes back to Proxy.frames once Begin, the write to the broker and Finish are done
	// with it (the pool keeps only buffers of its size classes).
	frame []byte
	hdr   protocol.RequestHeader
	slot  *slot
	req   kmsg.Request // decoded already, when the hook declined to Begin on the loop
}

func newSession(p *Proxy, c gnet.Conn, node int32) *session {
	ctx, cancel := context.WithCancel(p.ctx)
	remote := ""
	var bst *bridgeState
	if tc, ok := c.Context().(*tlsClient); ok {
		remote, bst = tc.remote, tc.bridge
	} else if a := c.RemoteAddr(); a != nil {
		remote = a.String()
	}
	return &session{p: p, c: c, node: node, remote: remote, bridge: bst, ctx: ctx, cancel: cancel, loop: p.loopOf(c.EventLoop())}
}

// dial connects to the broker off the loop and enrolls the connection into the client's loop.
func (s *session) dial() {
	nc, addr, err := s.p.dialUpstream(s.ctx, s.node)
	if err != nil && s.ctx.Err() != nil {
		s.p.log.Debug("client left before its broker connection was up", "client", s.remote, "node", s.node, "err", err)
		_ = s.c.Close() // the proxy's own context may have ended instead
		return
	}
	if err != nil {
		s.p.logConn(slog.LevelWarn, "closing client: upstream unreachable", "client", s.remote, "node", s.node, "err", err)
		_ = s.c.Close()
		return
	}
	s.upAddr = addr // not nc.RemoteAddr(): with kafka.tls that is the bridge's socket pair ("@")
	res, err := s.c.EventLoop().Enroll(gnet.NewContext(s.ctx, &upstream{s: s}), nc)
	if err != nil {
		_ = nc.Close()
		s.p.log.Debug("enroll upstream", "client", s.remote, "err", err)
		_ = s.c.Close()
		return
	}
	if r := <-res; r.Err != nil {
		s.p.logConn(slog.LevelWarn, "closing client: upstream enroll", "client", s.remote, "err", r.Err)
		_ = s.c.Close()
	}
}

// upOpened runs on the loop when the broker connection is enrolled.
func (s *session) upOpened(up gnet.Conn) gnet.Action {
	if s.closed {
		return gnet.Close
	}
	s.up = up
	s.upstreamUp()
	s.drain()
	return gnet.None
}

// upClosed runs on the loop when the broker connection ends.
func (s *session) upClosed(err error) {
	s.up = nil
	s.upstreamDown(!s.closed)
	if !s.closed {
		s.p.logConn(slog.LevelWarn, "closing client: broker connection ended", "client", s.remote, "node", s.node, "err", err)
		_ = s.c.Close()
	}
}

// clientClosed runs on the loop when the client connection ends.
func (s *session) clientClosed() {
	s.closed = true
	delete(s.loop.sessions, s)
	s.cancel()
	s.closedOps()
	s.closeLimits()
	s.pend, s.hooks = nil, nil
	if s.up != nil {
		_ = s.up.Close()
	}
}

// fail closes the client connection because of a protocol error.
func (s *session) fail(why string, err error) gnet.Action {
	s.p.logConn(slog.LevelWarn, "closing client: "+why, "client", s.remote, "node", s.node, "err", err)
	s.failing = true
	_ = s.c.Close()
	return gnet.Close
}

// onTraffic reads every complete request frame, and forwards large non-intercepted frames while
// they are still arriving (they never pile up in gnet's buffer and go out without a copy).
func (s *session) onTraffic() gnet.Action {
	c := s.c
	s.wakePending = false
	if s.failing {
		return gnet.Close
	}
	for {
		if s.rest > 0 {
			n := min(c.InboundBuffered(), s.rest)
			if n == 0 {
				return s.needInput()
			}
			b, err := c.Next(n)
			if err != nil {
				return s.fail("read frame", err)
			}
			s.rest -= n
			s.send(b)
			continue
		}
		if s.gatherTo > 0 {
			if act, done := s.gatherMore(); !done {
				return act
			}
			continue
		}
		if s.p.draining.Load() {
			return s.pauseReading(pauseDrain)
		}
		if s.inflightFull() {
			return s.pauseReading(pauseInflight)
		}
		if s.outboundFull() {
			return s.pauseReading(pauseOutbound)
		}
		if s.upstreamFull() {
			return s.pauseReading(pauseUpstream)
		}
		prefix, err := c.Peek(4)
		if err != nil || len(prefix) < 4 {
			return s.needInput()
		}
		size := int(protocol.FrameSize(prefix))
		if size < minRequestFrame || size > s.p.opts.MaxFrameBytes {
			s.p.logConn(slog.LevelWarn, "closing client: bad request frame size", "client", s.remote, "size", size, "max_frame_bytes", s.p.opts.MaxFrameBytes)
			return gnet.Close
		}
		if avail := c.InboundBuffered(); avail < 4+size {
			if size < streamMin {
				return s.needInput()
			}
			if !s.reserveFrame(4 + size) {
				return s.pauseReading(pauseQueued)
			}
			s.readOn()
			if s.startStream(size, avail) {
				s.releaseUnslotted()
				continue
			}
			// Taken whole (intercepted, ApiVersions): collected into a buffer of its own as it
			// arrives. Left in gnet's inbound ring instead, a 1 MB Produce would be copied on every
			// read as the ring grows, then once more out of it; this way each byte is copied once
			// and the buffer goes to the hook without another copy. The reservation stays held.
			// Memory follows the bytes that came, not the size a header claims, past gatherInitial.
			s.gatherTo = 4 + size
			if s.gatherTo <= maxPooledFrame {
				s.gather = s.p.frames.get(s.gatherTo)
			} else {
				s.gather = make([]byte, 0, gatherInitial)
			}
			continue
		}
		if !s.reserveFrame(4 + size) {
			return s.pauseReading(pauseQueued)
		}
		s.readOn()
		frame, err := c.Next(4 + size)
		if err != nil {
			return s.fail("read frame", err)
		}
		h, err := protocol.ParseRequestHeader(frame)
		if err != nil {
			s.p.logConn(slog.LevelWarn, "closing client: malformed request header", "client", s.remote, "err", err)
			return gnet.Close
		}
		if !s.accept(frame, h, false) {
			return gnet.Close
		}
		s.releaseUnslotted()
	}
}

// gatherMore moves buffered bytes into the frame being gathered and accepts it once whole. done
// is false when onTraffic must return act (more input needed, or the client is closed).
func (s *session) gatherMore() (act gnet.Action, done bool) {
	n := min(s.c.InboundBuffered(), s.gatherTo-len(s.gather))
	if n == 0 {
		return s.needInput(), false
	}
	b, err := s.c.Next(n)
	if err != nil {
		return s.fail("read frame", err), false
	}
	s.gather = append(s.gather, b...)
	if len(s.gather) < s.gatherTo {
		return s.needInput(), false
	}
	frame := s.gather
	s.gather, s.gatherTo = nil, 0
	h, err := protocol.ParseRequestHeader(frame)
	if err != nil {
		s.p.logConn(slog.LevelWarn, "closing client: malformed request header", "client", s.remote, "err", err)
		return gnet.Close, false
	}
	if !s.accept(frame, h, true) {
		return gnet.Close, false
	}
	s.releaseUnslotted()
	return gnet.None, true
}

// startStream begins forwarding a frame of size bytes of which avail are buffered. It declines
// when the header is not readable yet or the request must be seen whole (ApiVersions, hook).
func (s *session) startStream(size, avail int) bool {
	b, err := s.c.Peek(min(avail, 4+size, 64<<10))
	if err != nil {
		return false
	}
	h, err := protocol.ParseRequestHeaderPrefix(b)
	if err != nil || h.Key == 18 || h.Body < 0 {
		return false
	}
	if hook := s.p.opts.Hook; hook != nil && hook.Intercepts(h.Key) {
		return false
	}
	expect := true
	if h.Key == 0 {
		acks, err := protocol.ProduceAcks(b, h)
		if err != nil {
			return false
		}
		expect = acks != 0
	}
	if expect {
		sl := s.newSlot(h)
		s.slots.push(sl)
		s.inflight.push(sl)
	}
	chunk, err := s.c.Next(avail)
	if err != nil {
		return false
	}
	s.countRequest(h.Key, h.Version, 4+size)
	s.rest = 4 + size - avail
	s.send(chunk)
	return true
}

// send forwards request bytes that are not intercepted: to the broker socket when nothing waits,
// else behind the waiting bytes. b may alias gnet's buffer: both paths copy what they keep.
func (s *session) send(b []byte) {
	if s.up != nil && !s.hookBusy && len(s.pend) == 0 {
		if _, err := s.up.Write(b); err != nil {
			s.p.log.Debug("write to broker", "client", s.remote, "err", err)
		}
		return
	}
	s.pend = append(s.pend, b...)
}

// accept handles one whole request frame, which aliases gnet's buffer. False closes the client.
func (s *session) accept(frame []byte, h protocol.RequestHeader, owned bool) bool {
	s.countRequest(h.Key, h.Version, len(frame))
	if h.Key == 18 && protocol.ApiVersionsTooNew(h.Version) {
		sl := s.newSlot(h)
		sl.local = true
		s.slots.push(sl)
		s.complete(sl, protocol.UnsupportedApiVersions(h.CorrelationID), nil)
		return true
	}
	expect := true
	if h.Key == 0 {
		acks, err := protocol.ProduceAcks(frame, h)
		if err != nil {
			s.p.logConn(slog.LevelWarn, "closing client: malformed produce request", "client", s.remote, "err", err)
			return false
		}
		expect = acks != 0
	}
	hook := s.p.opts.Hook
	intercept := hook != nil && h.Key != 18 && h.Body >= 0 && hook.Intercepts(h.Key)
	if min, max, ok := protocol.Supported(h.Key); intercept && ok && (h.Version < min || h.Version > max) {
		// The hook must read the request, and a version the proxy does not parse (one it did not
		// advertise, sent by a client that skipped ApiVersions) could carry what it looks for
		// elsewhere: Produce v13 names topics by id, so a teed topic would pass untouched. A
		// broker closes the connection on a version it does not support; so does the proxy.
		s.p.logConn(slog.LevelWarn, "closing client: request version not supported", "client", s.remote,
			"api", kmsg.NameForKey(h.Key), "version", h.Version, "supported", fmt.Sprintf("%d-%d", min, max))
		return false
	}
	var sl *slot
	if expect || intercept {
		sl = s.newSlot(h)
		sl.noResp = !expect
		sl.hooked = intercept
		s.slots.push(sl)
		if expect {
			s.inflight.push(sl)
		}
	}
	if !intercept {
		s.send(frame)
		if owned {
			s.p.frames.put(frame) // send wrote or copied it
		}
		return true
	}
	if !owned {
		// frame aliases gnet's buffer, which is reused once onTraffic returns; the hook outlives it.
		frame = append(s.p.frames.get(len(frame)), frame...)
		if h.ClientID != nil {
			h.ClientID = frame[14 : 14+len(h.ClientID)]
		}
	}
	s.hooks = append(s.hooks, hookItem{pos: len(s.pend), frame: frame, hdr: h, slot: sl})
	s.drain()
	return true
}

func (s *session) newSlot(h protocol.RequestHeader) *slot {
	var sl *slot
	if n := len(s.free); n > 0 {
		sl = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		sl = new(slot)
	}
	*sl = slot{corr: h.CorrelationID, key: h.Key, ver: h.Version, size: s.takeReserved()}
	s.slotOpened(sl)
	return sl
}

// drain forwards waiting bytes up to the next intercepted request and starts its Begin; Begins
// the hook runs on the loop are done at once and the next one is taken.
func (s *session) drain() {
	for !s.hookBusy && !s.closed && !s.failing && s.up != nil {
		if len(s.hooks) == 0 {
			if len(s.pend) > 0 {
				if _, err := s.up.Write(s.pend); err != nil {
					s.p.log.Debug("write to broker", "client", s.remote, "err", err)
				}
				s.pend = s.pend[:0]
			}
			return
		}
		hi := s.hooks[0]
		s.hooks = s.hooks[1:]
		if hi.pos > 0 {
			if _, err := s.up.Write(s.pend[:hi.pos]); err != nil {
				s.p.log.Debug("write to broker", "client", s.remote, "err", err)
			}
			n := copy(s.pend, s.pend[hi.pos:])
			s.pend = s.pend[:n]
			for i := range s.hooks {
				s.hooks[i].pos -= hi.pos
			}
		}
		if s.beginOnLoop(&hi) {
			continue
		}
		s.hookBusy = true
		s.begins.submit(s.ctx, hi, 1, s.begin)
		return
	}
}

// beginOnLoop runs hi's Begin on the loop when the hook offers to (LoopBeginner) and reports
// whether it did. A declined request keeps its decoded form in hi for the worker.
func (s *session) beginOnLoop(hi *hookItem) bool {
	lb, ok := s.p.opts.Hook.(LoopBeginner)
	if !ok {
		return false
	}
	req, err := protocol.DecodeRequest(hi.frame, hi.hdr)
	if err != nil {
		return false // the worker's Begin reports it as for any hook
	}
	step, ok := lb.BeginOnLoop(s.ctx, s.connInfo(hi.hdr), req)
	if !ok {
		hi.req = req
		return false
	}
	s.began(*hi, s.stepOutput(*hi, step)) // no decode error here, and the session is open
	return true
}

func (s *session) connInfo(h protocol.RequestHeader) ConnInfo {
	return ConnInfo{RemoteAddr: s.remote, ClientID: string(h.ClientID), NodeID: s.node, Serial: &s.serial, Loop: s.loop, Keep: s.p.lim.keep}
}

// begun is a Begin's outcome, encoded off the loop where Begin ran there.
type begun struct {
	step  Step
	err   error  // the request could not be decoded
	local []byte // the encoded Local answer, if any and expected
	frame []byte // what goes to the broker: the client's bytes or the encoded Forward
}

// stepOutput encodes what step sends.
func (s *session) stepOutput(hi hookItem, step Step) begun {
	b := begun{step: step, frame: hi.frame}
	if step.Local != nil && !hi.slot.noResp {
		step.Local.SetVersion(hi.hdr.Version)
		b.local = protocol.AppendResponse(nil, hi.hdr.CorrelationID, step.Local)
	}
	if step.Local == nil && step.Forward != nil {
		b.frame = protocol.AppendRequest(nil, hi.hdr, step.Forward)
	}
	return b
}

// begin runs the hook's Begin off the loop, then acts on its Step on the loop.
func (s *session) begin(hi hookItem) {
	req, err := hi.req, error(nil)
	if req == nil {
		req, err = protocol.DecodeRequest(hi.frame, hi.hdr)
	}
	b := begun{err: err}
	if err == nil {
		b = s.stepOutput(hi, s.p.opts.Hook.Begin(s.ctx, s.connInfo(hi.hdr), req))
	}
	s.onLoop(func() {
		s.hookBusy = false
		if s.began(hi, b) {
			s.drain()
		}
	})
}

// began acts on a Begin's outcome, on the loop. It reports false when the session is closed or
// closing (failing): nothing behind the request may be forwarded then.
func (s *session) began(hi hookItem, b begun) bool {
	// The request's bytes may still be read by Finish (the tee's dead-letter records alias
	// them); without one they are free once written to the broker (gnet copies what waits).
	held := false
	defer func() {
		if !held {
			s.p.frames.put(hi.frame)
		}
	}()
	if s.closed || s.failing {
		return false
	}
	if b.err != nil {
		s.fail("undecodable intercepted request", b.err)
		return false
	}
	sl, step := hi.slot, b.step
	if step.Local != nil {
		sl.local = true
		s.complete(sl, b.local, nil)
		return true
	}
	sl.finish, sl.finishAsync = step.Finish, step.FinishAsync
	sl.teed = sl.hasFinish()
	if sl.teed {
		sl.buf, held = hi.frame, true
	}
	if s.up != nil {
		if _, werr := s.up.Write(b.frame); werr != nil {
			s.p.log.Debug("write to broker", "client", s.remote, "err", werr)
		}
	}
	if sl.noResp {
		s.complete(sl, nil, nil)
	}
	return true
}

// onLoop runs fn on the session's event loop.
func (s *session) onLoop(fn func()) {
	err := s.c.EventLoop().Execute(s.ctx, gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
	if err != nil {
		s.p.log.Debug("schedule on event loop", "client", s.remote, "err", err)
	}
}

// onUpTraffic reads broker responses on the loop and completes their slots.
func (s *session) onUpTraffic(up gnet.Conn) gnet.Action {
	for {
		if s.holdUpstream(up) {
			return gnet.None
		}
		if s.passing != nil {
			complete, err := s.passOn(up)
			if err != nil {
				s.fail("read broker response", err)
				return gnet.Close
			}
			if !complete {
				return gnet.None
			}
			continue
		}
		prefix, err := up.Peek(4)
		if err != nil || len(prefix) < 4 {
			return gnet.None
		}
		size := int(protocol.FrameSize(prefix))
		if size < 4 || size > maxResponseFrame {
			s.fail("bad response from broker", fmt.Errorf("frame size %d", size))
			return gnet.Close
		}
		if up.InboundBuffered() < 4+size {
			if size >= passMinResponse && s.startPassing(up, size) {
				continue
			}
			return gnet.None
		}
		frame, err := up.Next(4 + size)
		if err != nil {
			s.fail("read broker response", err)
			return gnet.Close
		}
		sl := s.inflight.brokerFront()
		s.inflight.pop()
		if sl == nil {
			s.fail("bad response from broker", errors.New("response without a pending request"))
			return gnet.Close
		}
		if corr := int32(binary.BigEndian.Uint32(frame[4:])); corr != sl.corr {
			s.fail("bad response from broker", fmt.Errorf("correlation id %d, expected %d", corr, sl.corr))
			return gnet.Close
		}
		out, resp, err := s.response(sl, frame)
		if err != nil {
			s.fail("bad response from broker", err)
			return gnet.Close
		}
		s.complete(sl, out, resp)
	}
}

// startPassing starts passing a large broker response on to the client as it arrives instead of
// collecting it whole: a consumer's Fetch response is up to fetch.max.bytes (50 MB by default,
// and raised for catching up), and collected whole it sat in the broker connection's input
// buffer, for every connection at once, before a byte of it left. Passed on, it is bounded like
// any output by MaxOutboundPerConnection (holdUpstream stops reading the broker). That needs the
// response written unchanged (no addresses to rewrite, no hook) and nothing before it still to
// be written (responses leave in request order). It reports whether the response is being passed.
func (s *session) startPassing(up gnet.Conn, size int) bool {
	if up.InboundBuffered() < 8 {
		return false
	}
	sl := s.inflight.brokerFront()
	if sl == nil || s.slots.front() != sl || sl.key == 18 || sl.hasFinish() || protocol.NeedsRewrite(sl.key, sl.ver) {
		return false
	}
	head, err := up.Peek(8)
	if err != nil || int32(binary.BigEndian.Uint32(head[4:])) != sl.corr {
		return false // the whole response's turn reports a wrong correlation id
	}
	s.inflight.pop()
	// Counted as the response starts: a client that has it must find it in /metrics. Its slot
	// stays at the front of s.slots, not done, until its last byte is written: it holds back
	// the answers after it (flush), and counts as in flight for the limits, the drain and a
	// close meanwhile like any slot.
	s.p.metrics.response(sl.key, sl.ver, 4+size)
	s.passing, s.passLeft = sl, 4+size
	return true
}

// passOn writes what has arrived of the response being passed, and reports whether it is
// complete (then the responses after it may go).
func (s *session) passOn(up gnet.Conn) (bool, error) {
	n := min(up.InboundBuffered(), s.passLeft)
	if n == 0 {
		return false, nil
	}
	b, err := up.Next(n)
	if err != nil {
		return false, err
	}
	s.write(b) // written now or copied: b is gnet's buffer
	if s.passLeft -= n; s.passLeft > 0 {
		return false, nil
	}
	sl := s.passing
	s.passing = nil
	s.slots.pop() // sl: nothing before it could leave
	if !s.closed {
		s.p.inflight.Add(-1)
	}
	s.recycle(sl)
	s.flush()
	return true, nil
}

// response turns a broker response into what the client gets: the broker's bytes (still aliasing
// gnet's buffer), a rewritten frame, or, for a hook's Finish, the decoded response with the
// proxy's addresses.
func (s *session) response(sl *slot, frame []byte) ([]byte, kmsg.Response, error) {
	switch {
	case sl.key == 18:
		out, err := protocol.RewriteApiVersions(frame, sl.ver)
		return out, nil, err
	case sl.hasFinish():
		// resp outlives this callback (Finish runs later, often off the loop) and kmsg keeps
		// unknown tagged fields as slices of its input, here gnet's read buffer: decode a copy.
		resp, err := protocol.DecodeResponse(bytes.Clone(frame), sl.key, sl.ver)
		if err != nil {
			return nil, nil, err
		}
		protocol.RewriteAddrs(resp, s.p.mapAddr)
		return nil, resp, nil
	default:
		out, err := protocol.RewriteResponse(frame, sl.key, sl.ver, s.p.mapAddr)
		return out, nil, err
	}
}

// complete marks a slot done, starts its Finish if it has one, and writes every completed slot
// at the head of the order. out may alias gnet's buffer: it is written now or copied.
func (s *session) complete(sl *slot, out []byte, resp kmsg.Response) {
	sl.done, sl.resp = true, resp
	if sl.hasFinish() {
		s.startFinishes()
	} else if s.slots.front() == sl {
		// The common case: written straight from the broker's bytes.
		s.slots.pop()
		s.deliver(sl, out)
		s.recycle(sl)
	} else if out != nil {
		sl.out = append([]byte(nil), out...)
	}
	s.flush()
}

// flush writes completed head slots in order; a slot whose Finish has not come back holds back
// every later response, and so does a response being passed on (not done until passOn has
// written it all).
func (s *session) flush() {
	for {
		sl := s.slots.front()
		if sl == nil || !sl.done || sl.hasFinish() {
			return
		}
		s.slots.pop()
		s.deliver(sl, sl.out)
		s.recycle(sl)
	}
}

// startFinishes starts the Finishes of answered slots, oldest first, up to maxFinishes at once.
// They overlap, so the OpenMLDB writes of a connection's pipelined Produce requests are in flight
// together instead of one after another; responses still leave in request order (flush).
func (s *session) startFinishes() {
	for i := s.slots.head; i < len(s.slots.buf) && s.finRuns < maxFinishes; i++ {
		sl := s.slots.buf[i]
		if sl == nil || !sl.done || !sl.hasFinish() || sl.finStarted {
			continue
		}
		sl.finStarted = true
		s.finRuns++
		if sl.finishAsync != nil {
			// On the loop: the hook starts its work and returns; done comes back from wherever
			// that work completes, with no worker goroutine to wake on either side.
			sl.finishAsync(s.ctx, sl.resp, func(r kmsg.Response) { s.finished(sl, r) })
			continue
		}
		s.finishes.submit(s.ctx, sl, s.finRuns, s.finish)
	}
}

// finish runs a slot's Finish off the loop.
func (s *session) finish(sl *slot) {
	s.finished(sl, sl.finish(s.ctx, sl.resp))
}

// finished takes a slot's Finish result, from any goroutine, back to the loop.
func (s *session) finished(sl *slot, r kmsg.Response) {
	var out []byte
	if r != nil && !sl.noResp {
		out = protocol.AppendResponse(nil, sl.corr, r)
	}
	// Through the Loop: when the Finish completed on this loop (its OpenMLDB responses read
	// here), the answer goes out before the loop moves on, with no task to queue.
	err := s.loop.Run(func() {
		s.finRuns--
		if sl.buf != nil {
			s.p.frames.put(sl.buf)
		}
		sl.finish, sl.finishAsync, sl.resp, sl.out, sl.buf = nil, nil, nil, out, nil
		if !s.closed {
			s.startFinishes()
			s.flush()
		}
	})
	if err != nil {
		s.p.log.Debug("schedule on event loop", "client", s.remote, "err", err)
	}
}

func (s *session) write(b []byte) {
	if len(b) == 0 || s.closed {
		return
	}
	n, err := s.c.Write(b)
	s.sent += int64(n)
	if err != nil {
		s.p.log.Debug("write to client", "client", s.remote, "err", err)
	}
	s.p.lim.outboundSeen(int64(s.c.OutboundBuffered()))
}

func (s *session) recycle(sl *slot) {
	s.slotReleased(sl)
	if !sl.hooked {
		*sl = slot{}
		s.free = append(s.free, sl)
	}
}
