package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// readyFresh is how long a successful upstream Metadata answer keeps the proxy ready without
// asking again, so frequent readiness probes cost at most one broker round trip per interval.
const readyFresh = 2 * time.Second

// connLogBurst is how many "client connected" (and as many "client disconnected") lines go out
// per second: every one at ordinary rates, a sample with a count of the rest in a reconnect storm.
const connLogBurst = 20

// pauseDrain is the read-pause reason while draining (see limits.go for the others).
const pauseDrain uint8 = 100

// ops is the proxy's operational state: drain, readiness and in-flight accounting.
type ops struct {
	metrics    *Metrics
	inflight   atomic.Int64 // slots of every open session not yet answered
	draining   atomic.Bool
	upstreamOK atomic.Int64 // unix ns of the newest successful Metadata from a bootstrap broker
	probeMu    sync.Mutex
}

// InflightRequests is the number of requests read from clients and not answered yet.
func (p *Proxy) InflightRequests() int64 { return p.inflight.Load() }

// Draining reports whether Drain was called.
func (p *Proxy) Draining() bool { return p.draining.Load() }

// Drain stops accepting client connections (every listener closes, the bootstrap one included,
// so new connections are refused; one accepted just before is closed at once), stops reading
// new requests from open connections, and
// waits until every request already read has been answered, including Produce requests whose
// hook is still writing to OpenMLDB, and every answer has been taken by its client's socket, or
// until ctx ends. Requests a client sent but the proxy had not read yet get no answer: the client
// sees the connection close and retries them elsewhere, so nothing it was told succeeded is lost.
// Call Close afterwards. Drain is DrainRequests, then AnswersTaken.
func (p *Proxy) Drain(ctx context.Context) error {
	if err := p.DrainRequests(ctx); err != nil {
		return err
	}
	return p.AnswersTaken(ctx)
}

// DrainRequests is the first part of Drain: it stops accepting connections and reading
// requests, and waits until every request already read has been answered (the answer written to
// the connection, perhaps still in its send buffer) or ctx ends.
func (p *Proxy) DrainRequests(ctx context.Context) error {
	if !p.draining.Swap(true) {
		p.closeListeners()
		p.log.Info("draining: no new connections or requests", "inflight", p.inflight.Load(), "clients", p.ClientConns())
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n := p.inflight.Load()
		if n <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %d requests still in flight: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// AnswersTaken is the second part of Drain: it waits until the clients' sockets have taken every
// answer written to them, or ctx ends, or the proxy is closed or failed (nothing is left to take
// them). An answer the close finds in a send buffer is written once, as far as the socket takes
// it, so a client reading slower than it was answered would lose it.
func (p *Proxy) AnswersTaken(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var unsent, conns int // as last counted
	for {
		b, c, err := p.unsentAnswers(ctx)
		switch {
		case err == nil && b == 0:
			return nil
		case err == nil:
			unsent, conns = b, c
		case p.ctx.Err() != nil, p.Err() != nil:
			return nil // closed or failed: its connections are gone
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %d bytes of answers not yet taken by %d clients: %w", unsent, conns, ctx.Err())
		case <-p.ctx.Done():
			return nil
		case <-p.failed:
			return nil
		case <-t.C:
		}
	}
}

// unsentAnswers sums, over every client connection, the bytes of answers written but not yet
// taken by its socket, asking each event loop on the loop.
func (p *Proxy) unsentAnswers(ctx context.Context) (bytes, conns int, err error) {
	p.loopsMu.Lock()
	loops := make([]*Loop, 0, len(p.loops))
	for _, l := range p.loops {
		loops = append(loops, l)
	}
	p.loopsMu.Unlock()
	type count struct{ bytes, conns int }
	counts := make(chan count, len(loops))
	for _, l := range loops {
		if err := l.Run(func() {
			b, c := l.unsent()
			counts <- count{b, c}
		}); err != nil {
			return 0, 0, fmt.Errorf("count unsent answers: %w", err)
		}
	}
	for range loops {
		select {
		case c := <-counts:
			bytes += c.bytes
			conns += c.conns
		case <-ctx.Done():
			return bytes, conns, ctx.Err()
		case <-p.ctx.Done(): // closing: a stopping loop may never run the count
			return bytes, conns, p.ctx.Err()
		case <-p.failed:
			return bytes, conns, p.Err()
		}
	}
	return bytes, conns, nil
}

// closeListeners closes every broker (and TLS bootstrap) listener and keeps new ones from
// opening.
func (p *Proxy) closeListeners() {
	p.mu.Lock()
	p.closed = true
	bls := p.brokers
	p.brokers = nil
	p.mu.Unlock()
	for _, bl := range bls {
		bl.close()
	}
}

// Ready reports whether the proxy can serve: not failed (see Failed), not draining, and a
// bootstrap broker answered a Metadata request within the last readyFresh (else one is sent now).
func (p *Proxy) Ready(ctx context.Context) error {
	if err := p.Err(); err != nil {
		return err
	}
	if p.draining.Load() {
		return errors.New("draining")
	}
	if p.upstreamFresh() {
		return nil
	}
	p.probeMu.Lock()
	defer p.probeMu.Unlock()
	if p.upstreamFresh() { // a concurrent probe just succeeded
		return nil
	}
	if err := p.discoverOnce(ctx); err != nil {
		return fmt.Errorf("upstream cluster not answering: %w", err)
	}
	return nil
}

func (p *Proxy) upstreamFresh() bool {
	t := p.upstreamOK.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < readyFresh
}

// refuseDraining closes a new client connection while draining; it runs before the session
// exists.
func (p *Proxy) refuseDraining(c gnet.Conn) bool {
	if !p.draining.Load() {
		return false
	}
	p.metrics.drained.Inc()
	p.log.Debug("closing client: draining", "client", c.RemoteAddr())
	return true
}

// listenerName names the listener of node for logs.
func listenerName(node int32) string {
	if node < 0 {
		return "bootstrap"
	}
	return "broker"
}

// opened counts and logs an admitted client connection.
func (s *session) opened() {
	s.openedAt = time.Now()
	s.p.metrics.connsTotal.Inc()
	s.p.logConn(slog.LevelInfo, "client connected", "client", s.remote, "listener", listenerName(s.node), "node", s.node)
}

// logConn writes a line about one client connection. Each such line is worth reading at ordinary
// rates, but a reconnect storm would write one per connection: at most connLogBurst lines a
// second go out per message, and the next one out counts those left out ("suppressed").
func (p *Proxy) logConn(level slog.Level, msg string, args ...any) {
	ok, suppressed := p.connLog.Allow(msg)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	p.log.Log(context.Background(), level, msg, args...)
}

// closedOps logs a client connection's end and returns its unanswered requests' in-flight
// count; runs on the loop.
func (s *session) closedOps() {
	if n := s.slots.len(); n > 0 {
		s.p.inflight.Add(-int64(n))
	}
	s.p.logConn(slog.LevelInfo, "client disconnected", "client", s.remote, "listener", listenerName(s.node), "node", s.node,
		"duration", time.Since(s.openedAt).Round(time.Millisecond), "requests", s.requests, "unanswered", s.slots.len())
}

// countRequest accounts one request frame of n bytes.
func (s *session) countRequest(key, ver int16, n int) {
	s.requests++
	s.p.metrics.request(key, ver, n)
}

// slotOpened accounts a new response slot.
func (s *session) slotOpened(sl *slot) {
	s.p.inflight.Add(1)
	if sl.key == 0 {
		sl.start = time.Now().UnixNano()
	}
}

// deliver writes a slot's response (nil for none) and accounts it as answered.
func (s *session) deliver(sl *slot, out []byte) {
	if s.closed {
		return // closedOps already uncounted it
	}
	// Counted before the write: a client that has its answer must find it in /metrics.
	m := s.p.metrics
	m.response(sl.key, sl.ver, len(out))
	if sl.start != 0 && len(out) > 0 {
		m.observeProduce(sl.start, sl.teed)
	}
	s.write(out)
	s.p.inflight.Add(-1)
}

// upstreamUp accounts the session's broker connection as open.
func (s *session) upstreamUp() {
	if s.upAddr != "" {
		s.p.metrics.upstreamEvent(s.upAddr, func(u *upstreamSeries) {
			u.open++
			u.conns.Inc()
			u.total.Inc()
		})
	}
}

// upstreamDown accounts the session's broker connection as closed; unexpected when the client
// is still connected.
func (s *session) upstreamDown(unexpected bool) {
	if s.upAddr != "" {
		s.p.metrics.upstreamEvent(s.upAddr, func(u *upstreamSeries) {
			u.open--
			u.conns.Dec()
			if unexpected {
				u.closeErrs.Inc()
			}
		})
	}
}
