package proxy

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Limits bounds what clients can make the proxy hold. Zero values mean no bound.
//
// At a bound the proxy stops reading from the client concerned — it neither consumes further
// request frames nor reads the socket (see readPauser) — so the client's TCP window closes and it
// blocks; reading resumes when responses leave. Only MaxConnections closes connections.
type Limits struct {
	// MaxConnections is the most client connections open at once over all listeners (a TLS
	// connection counts from its accept, handshake included); further connections are closed at
	// once with a log line.
	MaxConnections int
	// MaxInflightPerConnection is how many requests of one connection may await their responses
	// (including requests a Hook still works on) before the proxy stops reading that connection.
	MaxInflightPerConnection int
	// MaxQueuedBytes bounds the request bytes held over all connections: every request frame from
	// the moment it is read until its response has been written to the client (so requests queued
	// for the broker, in gnet's output buffer, or held by a Hook such as the tee's OpenMLDB
	// writes). A frame is read only if it fits, except when nothing is queued at all, so a single
	// frame larger than the bound cannot wedge the proxy.
	MaxQueuedBytes int64
	// MaxOutboundPerConnection bounds the response bytes waiting to be written to one client
	// (gnet's output buffer). A client that sends requests but does not read its responses would
	// otherwise grow it without end; past the bound its requests are not read until it has read
	// enough. Nothing is dropped: the responses already waiting still go out.
	MaxOutboundPerConnection int64
}

// outboundRecheck is how soon a connection paused on MaxOutboundPerConnection looks again: gnet
// tells nothing when its output buffer drains, so the session wakes itself.
const outboundRecheck = 5 * time.Millisecond

// pausedInboundCap bounds a paused connection's buffered input when its reads cannot be paused
// (see readPauser); past it the connection is closed rather than buffered further.
const pausedInboundCap = 4 << 20

// Reasons a session stopped reading.
const (
	pauseInflight uint8 = 1 + iota
	pauseQueued
	pauseOutbound
	pauseUpstream
)

// limiter holds the proxy-wide counters of Limits.
type limiter struct {
	limits atomic.Pointer[Limits] // the bounds in force (SetLimits replaces them)

	conns  atomic.Int64
	queued atomic.Int64
	peak   atomic.Int64
	pauses atomic.Int64
	// peakOut is the most response bytes seen waiting for one client.
	peakOut atomic.Int64

	mu      sync.Mutex
	waiting map[*session]struct{} // sessions paused on MaxQueuedBytes
	nwait   atomic.Int32
}

// SetLimits replaces the limits in force, as a configuration reload does. Connections already
// open stay open under a lower MaxConnections; every bound applies from the next frame read, and
// connections paused on a raised bound resume as soon as they are looked at again (those waiting
// for queued bytes at once, the others when a response leaves or within outboundRecheck).
func (p *Proxy) SetLimits(l Limits) {
	p.lim.limits.Store(&l)
	p.lim.wakeWaiting()
}

// Limits returns the limits in force.
func (p *Proxy) Limits() Limits { return *p.lim.limits.Load() }

// ClientConns is the number of client connections open now, TLS handshakes in progress included.
func (p *Proxy) ClientConns() int64 { return p.lim.conns.Load() }

// QueuedBytes is the request bytes held now (see Limits.MaxQueuedBytes).
func (p *Proxy) QueuedBytes() int64 { return p.lim.queued.Load() }

// PeakQueuedBytes is the highest QueuedBytes seen since start.
func (p *Proxy) PeakQueuedBytes() int64 { return p.lim.peak.Load() }

// PeakOutboundBytes is the most response bytes seen waiting to be written to one client (see
// Limits.MaxOutboundPerConnection).
func (p *Proxy) PeakOutboundBytes() int64 { return p.lim.peakOut.Load() }

func (l *limiter) outboundSeen(n int64) { raiseTo(&l.peakOut, n) }

// raiseTo sets a to n if n is greater.
func raiseTo(a *atomic.Int64, n int64) {
	for {
		cur := a.Load()
		if n <= cur || a.CompareAndSwap(cur, n) {
			return
		}
	}
}

// ReadPauses counts the times a client connection stopped being read because of a limit.
func (p *Proxy) ReadPauses() int64 { return p.lim.pauses.Load() }

// admitConn counts a new client connection, or refuses it at MaxConnections.
func (p *Proxy) admitConn(remote string, node int32) bool {
	max := int64(p.lim.limits.Load().MaxConnections)
	n := p.lim.conns.Add(1)
	if max > 0 && n > max {
		p.lim.conns.Add(-1)
		p.logRefused(remote, node, max)
		return false
	}
	return true
}

// logRefused logs a connection refused at MaxConnections, at most once a second.
func (p *Proxy) logRefused(remote string, node int32, max int64) {
	if ok, suppressed := p.refusedLog.Allow("max_connections"); ok {
		p.log.Warn("closing client: limits.max_connections reached", "client", remote, "node", node, "max_connections", max,
			"suppressed", suppressed)
	}
}

// connClosed uncounts a client connection admitted by admitConn.
func (p *Proxy) connClosed() { p.lim.conns.Add(-1) }

// reserve takes n bytes of MaxQueuedBytes, or reports false when they do not fit.
func (l *limiter) reserve(n, max int64) bool {
	for {
		cur := l.queued.Load()
		next := cur + n
		if max > 0 && next > max && cur > 0 {
			return false
		}
		if l.queued.CompareAndSwap(cur, next) {
			raiseTo(&l.peak, next)
			return true
		}
	}
}

// keep counts n bytes until release (ConnInfo.Keep), whatever the bound.
func (l *limiter) keep(n int64) (release func()) {
	raiseTo(&l.peak, l.queued.Add(n))
	var once sync.Once
	return func() { once.Do(func() { l.release(n) }) }
}

// release returns n bytes and wakes the sessions waiting for room.
func (l *limiter) release(n int64) {
	if n == 0 {
		return
	}
	l.queued.Add(-n)
	l.wakeWaiting()
}

// wakeWaiting wakes every session waiting for room in MaxQueuedBytes.
func (l *limiter) wakeWaiting() {
	if l.nwait.Load() == 0 {
		return
	}
	l.mu.Lock()
	ws := l.waiting
	l.waiting = nil
	l.nwait.Store(0)
	l.mu.Unlock()
	for s := range ws {
		// Wake runs the session's OnTraffic on its own loop, which retries the frame; a closed
		// connection ignores it.
		_ = s.c.Wake(nil)
	}
}

// wait registers s to be woken by the next release.
func (l *limiter) wait(s *session) {
	l.mu.Lock()
	if l.waiting == nil {
		l.waiting = map[*session]struct{}{}
	}
	l.waiting[s] = struct{}{}
	l.nwait.Store(int32(len(l.waiting)))
	l.mu.Unlock()
}

// unwait forgets s (its connection closed).
func (l *limiter) unwait(s *session) {
	if l.nwait.Load() == 0 {
		return
	}
	l.mu.Lock()
	delete(l.waiting, s)
	l.nwait.Store(int32(len(l.waiting)))
	l.mu.Unlock()
}

// outboundFull reports whether the client's unread responses are past their bound; if so a wake
// is scheduled to look again.
func (s *session) outboundFull() bool {
	if _, over := s.outboundOver(); !over {
		return false
	}
	s.recheckSoon(&s.outboundWake, s.c)
	return true
}

// upstreamFull reports whether requests the broker has not taken yet (in its connection's output
// buffer, or waiting behind a Finish) are past MaxOutboundPerConnection; if so a wake is
// scheduled to look again. Requests with a response slot are bounded by the slots and
// MaxQueuedBytes, but an acks=0 Produce has none and releases its reservation once handed on,
// so without this a client producing with acks=0 to a broker that reads slowly or not at all
// would have the proxy buffer everything it sends.
func (s *session) upstreamFull() bool {
	max := s.p.lim.limits.Load().MaxOutboundPerConnection
	queued := len(s.pend)
	if s.up != nil {
		queued += s.up.OutboundBuffered()
	}
	if max <= 0 || int64(queued) <= max {
		return false
	}
	s.recheckSoon(&s.upstreamWake, s.c)
	return true
}

// holdUpstream reports whether the broker connection must not be read now because the client's
// unread responses are past MaxOutboundPerConnection: they would only pile up in the proxy. The
// broker connection's socket reads stop (its responses wait in the kernel and the broker) and a
// timer wakes it to look again; reads resume once the client has read enough.
func (s *session) holdUpstream(up gnet.Conn) bool {
	max, over := s.outboundOver()
	if !over {
		if s.upPaused {
			s.upPaused = false
			if s.upPauser != nil {
				if err := s.upPauser.resume(up.OutboundBuffered() > 0); err != nil {
					s.p.log.Warn("resume broker reads", "client", s.remote, "err", err)
				}
			}
		}
		return false
	}
	if !s.upPaused {
		s.upPaused = true
		s.p.lim.pauses.Add(1)
		s.p.log.Debug("pausing broker reads: client is not reading its responses", "client", s.remote, "outbound", s.c.OutboundBuffered())
		if s.upPauser == nil {
			var err error
			if s.upPauser, err = newReadPauser(up); err != nil {
				s.p.log.Warn("cannot pause broker reads; buffering instead", "client", s.remote, "err", err)
			}
		}
	}
	if s.upPauser != nil {
		// Re-applied every time: gnet re-arms reads when a write to the broker has to wait.
		if err := s.upPauser.pause(up.OutboundBuffered() > 0); err != nil {
			s.p.log.Warn("pause broker reads", "client", s.remote, "err", err)
		}
	}
	if s.upPauser == nil && up.InboundBuffered() > pausedInboundCap+int(max) {
		// Reads cannot be paused here: rather than move the backlog into the broker
		// connection's buffer without end, give up on this client.
		s.fail("client does not read its responses", fmt.Errorf("%d bytes unread, %d more from the broker buffered", s.c.OutboundBuffered(), up.InboundBuffered()))
		return true
	}
	s.recheckSoon(&s.upWake, up)
	return true
}

// outboundOver reports whether the client's unread responses are past MaxOutboundPerConnection
// (max, the bound in force; 0 means none).
func (s *session) outboundOver() (max int64, over bool) {
	max = s.p.lim.limits.Load().MaxOutboundPerConnection
	return max, max > 0 && int64(s.c.OutboundBuffered()) > max
}

// recheckSoon wakes c after outboundRecheck unless *armed says a wake is already on its way. One
// chain per flag: the flag is cleared by the timer (on the loop, ahead of the wake), not by
// whatever else runs OnTraffic meanwhile.
func (s *session) recheckSoon(armed *bool, c gnet.Conn) {
	if *armed {
		return
	}
	*armed = true
	time.AfterFunc(outboundRecheck, func() {
		s.onLoop(func() { *armed = false })
		_ = c.Wake(nil)
	})
}

// inflightFull reports whether the session may not read another request.
func (s *session) inflightFull() bool {
	max := s.p.lim.limits.Load().MaxInflightPerConnection
	return max > 0 && s.slots.len() >= max
}

// reserveFrame takes room for a request frame of n bytes (size prefix included) before it is
// consumed; the reservation moves to the frame's slot (newSlot) or is released after the frame
// was forwarded without one (releaseUnslotted).
func (s *session) reserveFrame(n int) bool {
	max := s.p.lim.limits.Load().MaxQueuedBytes
	if s.p.lim.reserve(int64(n), max) {
		s.reserved += int64(n)
		return true
	}
	s.p.lim.wait(s)
	// A release (or a raised bound, SetLimits) between the failed reserve and wait would have
	// found no waiter: retry once, under the bound in force now.
	if s.p.lim.reserve(int64(n), s.p.lim.limits.Load().MaxQueuedBytes) {
		s.p.lim.unwait(s)
		s.reserved += int64(n)
		return true
	}
	return false
}

// releaseUnslotted releases the reservation of a frame that got no slot (Produce acks=0 that is
// not intercepted): it has been written to the broker socket or copied behind waiting bytes.
func (s *session) releaseUnslotted() {
	if s.reserved != 0 {
		s.p.lim.release(s.reserved)
		s.reserved = 0
	}
}

// takeReserved moves the current reservation to a slot.
func (s *session) takeReserved() int64 {
	n := s.reserved
	s.reserved = 0
	return n
}

// pauseReading stops reading the client because of why, and returns what OnTraffic returns.
func (s *session) pauseReading(why uint8) gnet.Action {
	if s.pauseWhy == 0 {
		s.p.lim.pauses.Add(1)
		s.p.log.Debug("pausing reads", "client", s.remote, "reason", pauseReason(why), "inflight", s.slots.len(), "queued_bytes", s.p.lim.queued.Load())
	}
	s.pauseWhy = why
	if s.pauser == nil && s.pauseErr == nil {
		s.pauser, s.pauseErr = newReadPauser(s.c)
		if s.pauseErr != nil {
			s.p.log.Warn("cannot pause socket reads; buffering up to a cap instead", "client", s.remote, "err", s.pauseErr)
		}
	}
	if s.pauser != nil {
		// Re-applied on every call: gnet re-arms reads when a write to this client has to wait.
		if err := s.pauser.pause(s.c.OutboundBuffered() > 0); err != nil {
			s.p.log.Warn("pause socket reads", "client", s.remote, "err", err)
		}
	}
	if s.c.InboundBuffered() > pausedInboundCap+s.p.opts.MaxFrameBytes {
		s.p.logConn(slog.LevelWarn, "closing client: input buffered while paused passes the cap", "client", s.remote, "buffered", s.c.InboundBuffered())
		return gnet.Close
	}
	return gnet.None
}

// resumeReading re-arms reads after a pause; called from OnTraffic once no bound holds.
func (s *session) resumeReading() {
	s.pauseWhy = 0
	if s.pauser != nil {
		if err := s.pauser.resume(s.c.OutboundBuffered() > 0); err != nil {
			s.p.log.Warn("resume socket reads", "client", s.remote, "err", err)
		}
	}
	s.p.log.Debug("resuming reads", "client", s.remote)
}

// slotReleased returns a delivered slot's bytes and wakes a session paused on its in-flight
// bound; runs on the loop.
func (s *session) slotReleased(sl *slot) {
	if !s.closed {
		s.p.lim.release(sl.size)
	}
	sl.size = 0
	if s.pauseWhy == pauseInflight && !s.inflightFull() && !s.wakePending {
		s.wakePending = true
		_ = s.c.Wake(nil)
	}
}

// closeLimits returns everything the session still holds; runs on the loop when it closes.
func (s *session) closeLimits() {
	var n int64
	for i := s.slots.head; i < len(s.slots.buf); i++ {
		if sl := s.slots.buf[i]; sl != nil {
			n += sl.size
			sl.size = 0
		}
	}
	n += s.takeReserved()
	s.p.lim.unwait(s)
	s.p.lim.release(n)
}

func pauseReason(why uint8) string {
	switch why {
	case pauseInflight:
		return "limits.max_inflight_per_connection"
	case pauseOutbound:
		return "limits.max_outbound_bytes_per_connection"
	case pauseUpstream:
		return "limits.max_outbound_bytes_per_connection (requests the broker has not read)"
	}
	return "limits.max_queued_bytes"
}

// needInput is OnTraffic's return when a frame is not complete yet: reading must be on, so a
// pause ends here (the bound that caused it no longer holds when this point is reached).
func (s *session) needInput() gnet.Action {
	s.readOn()
	return gnet.None
}

// readOn ends a pause, if any.
func (s *session) readOn() {
	if s.pauseWhy != 0 {
		s.resumeReading()
	}
}
