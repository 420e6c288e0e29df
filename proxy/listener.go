package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
)

// engine is the one gnet engine of the proxy. Connections accepted by the bootstrap and broker
// listeners are enrolled into its event loops, so the number of event loops does not grow with
// the number of brokers (each loop blocks an OS thread in epoll_wait).
type engine struct {
	gnet.BuiltinEventEngine
	p       *Proxy
	eng     gnet.Engine
	started chan struct{} // closed by the first OnTick: the event loops are registered
	once    sync.Once
	ended   chan struct{} // closed when gnet.Run returned
	runErr  error         // gnet.Run's result, set before ended is closed
	// stopping is set by stop: the engine ending afterwards is no failure.
	stopping atomic.Bool
	addr     string // the engine's own listener (engineAddr)
	// errs keeps gnet's last error lines: gnet.Run returns nil when the engine shut itself down
	// (an Accept error, say), so they are all that tells why.
	errs gnetErrors
}

// brokerConn tags a connection enrolled from the listener of a broker node.
type brokerConn struct{ node int32 }

// eventLoops is how many gnet event loops serve clients: half the CPUs, at least one, leaving
// processors to the upstream reader and writer goroutines.
func eventLoops() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// startEngine starts the engine on a private socket of its own (engineAddr) and returns once it
// runs. Every client listener is a Go accept loop (acceptLoop, acceptTLS) enrolling its
// connections into the engine: gnet's acceptor ends the whole engine, closing every client, on an
// Accept error such as EMFILE, where a Go loop waits and retries.
func (p *Proxy) startEngine(ctx context.Context) (*engine, error) {
	var err error
	for range 3 { // the port engineAddr picked can be taken before gnet binds it
		var e *engine
		if e, err = p.runEngine(ctx); err == nil || ctx.Err() != nil {
			return e, err
		}
	}
	return nil, err
}

// runEngine is one attempt of startEngine.
func (p *Proxy) runEngine(ctx context.Context) (*engine, error) {
	addr, err := engineAddr()
	if err != nil {
		return nil, err
	}
	e := &engine{p: p, addr: addr, started: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(e.ended)
		e.runErr = gnet.Run(e, addr,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(eventLoops()),
			// Enrolling from accept goroutines needs a balancer other than round-robin.
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			// The ticker starts after the event loops are registered: its first tick is the
			// signal that Register (used by the accept loops) is safe.
			gnet.WithTicker(true),
			gnet.WithLogger(gnetLogger{l: p.log, errs: &e.errs}))
	}()
	select {
	case <-e.started:
		go p.watchEngine(e)
		return e, nil
	case <-e.ended:
		return nil, fmt.Errorf("start gnet engine on %s: %w", addr, e.cause())
	case <-ctx.Done():
		return nil, fmt.Errorf("start gnet engine on %s: %w", addr, ctx.Err())
	}
}

// engineAddr picks the engine's own listener. gnet cannot run without one, and no client is
// served there: a UDP socket on a free loopback port, since UDP has no Accept to fail and needs
// no file system (a unix socket would need a writable directory, which the sidecar manifest's
// read-only root does not give, and gnet's address syntax cannot name an abstract one).
// Datagrams arriving there are dropped (engine.OnTraffic). The port is picked here rather than
// left to gnet (":0") because gnet.Stop, which the tests use to stop an engine from outside,
// finds engines by the address given to gnet.Run.
func engineAddr() (string, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("engine socket: %w", err)
	}
	addr := pc.LocalAddr().String()
	if err := pc.Close(); err != nil {
		return "", fmt.Errorf("engine socket: %w", err)
	}
	return "udp4://" + addr, nil
}

// startBootstrap opens the bootstrap listener on Listen, plain or TLS.
func (p *Proxy) startBootstrap(ln net.Listener) {
	bl := newBrokerListener(ln, -1)
	p.mu.Lock()
	if p.closed { // the engine failed already (fail closed the listeners)
		p.mu.Unlock()
		_ = ln.Close()
		return
	}
	p.brokers = append(p.brokers, bl)
	p.mu.Unlock()
	p.accepting(bl)
}

// cause is why the engine ended, once it has.
func (e *engine) cause() error {
	if e.runErr != nil {
		return e.runErr
	}
	if last := e.errs.last(); last != "" {
		return errors.New(last)
	}
	return errors.New("no error reported")
}

// watchEngine fails the proxy when its engine ends without stop: gnet then has closed every
// client connection, and the process must not go on looking healthy.
func (p *Proxy) watchEngine(e *engine) {
	<-e.ended
	if e.stopping.Load() {
		return
	}
	p.fail(fmt.Errorf("gnet engine stopped: %w", e.cause()))
}

// stop shuts the engine down, closing every client connection, and waits for it.
func (e *engine) stop(ctx context.Context) error {
	e.stopping.Store(true)
	select {
	case <-e.ended:
		return nil // it stopped by itself (Proxy.Err says why)
	default:
	}
	// ErrEngineInShutdown: it is stopping by itself right now.
	if err := e.eng.Stop(ctx); err != nil && !errors.Is(err, gerrors.ErrEngineInShutdown) {
		return fmt.Errorf("stop engine: %w", err)
	}
	select {
	case <-e.ended:
	case <-ctx.Done():
		return fmt.Errorf("stop engine: %w", ctx.Err())
	}
	return nil
}

// OnBoot records the engine.
func (e *engine) OnBoot(eng gnet.Engine) gnet.Action {
	e.eng = eng
	return gnet.None
}

// OnTick reports the engine started; later ticks are rare and do nothing.
func (e *engine) OnTick() (time.Duration, gnet.Action) {
	e.once.Do(func() { close(e.started) })
	return time.Hour, gnet.None
}

// OnOpen creates the session of a client connection (dialing its broker in a goroutine), or
// attaches an enrolled broker connection to its session. Every connection comes enrolled, tagged
// by its context.
func (e *engine) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	switch x := c.Context().(type) {
	case *upstream:
		act := x.s.upOpened(c)
		x.opened = act == gnet.None
		return nil, act
	case *hookConn:
		return nil, gnet.None
	case brokerConn:
		return nil, e.open(c, x.node, false)
	case *tlsClient:
		x.opened.Store(true)
		return nil, e.open(c, x.node, true)
	}
	return nil, gnet.Close // no connection comes otherwise (engineAddr is UDP)
}

// open starts the session of a client connection; admitted tells that acceptTLS already counted
// it against MaxConnections (a refused one is then uncounted by OnClose).
func (e *engine) open(c gnet.Conn, node int32, admitted bool) gnet.Action {
	if e.p.refuseDraining(c) {
		return gnet.Close
	}
	s := newSession(e.p, c, node)
	if !admitted && !e.p.admitConn(s.remote, node) {
		return gnet.Close
	}
	s.opened()
	if s.loop.sessions == nil {
		s.loop.sessions = map[*session]struct{}{}
	}
	s.loop.sessions[s] = struct{}{}
	c.SetContext(s)
	go s.dial()
	return gnet.None
}

// OnClose ends the session of a client connection, or reports a broker connection gone.
func (e *engine) OnClose(c gnet.Conn, err error) gnet.Action {
	switch x := c.Context().(type) {
	case *session:
		x.clientClosed()
		e.p.connClosed()
	case *upstream:
		if x.opened {
			x.s.upClosed(err)
		}
	case *hookConn:
		x.onClose(err)
	case *tlsClient: // refused by open before it had a session
		x.release()
	}
	return gnet.None
}

// OnTraffic handles requests from a client, responses from a broker, or a hook connection's
// input; a datagram to the engine's own socket (engineAddr) is dropped.
func (e *engine) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *session:
		return x.onTraffic()
	case *upstream:
		return x.s.onUpTraffic(c)
	case *hookConn:
		return x.onTraffic(c)
	}
	return gnet.Close
}

// brokerListener accepts connections for one broker node and enrolls them into the engine.
type brokerListener struct {
	node int32
	ln   net.Listener
	stop chan struct{} // closed by close: ends an accept loop's backoff at once
	done chan struct{}
}

func newBrokerListener(ln net.Listener, node int32) *brokerListener {
	return &brokerListener{node: node, ln: ln, stop: make(chan struct{}), done: make(chan struct{})}
}

// listenBroker opens the listener of node on addr.
func (p *Proxy) listenBroker(addr string, node int32) (*brokerListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s for node %d: %w", addr, node, err)
	}
	bl := newBrokerListener(ln, node)
	p.accepting(bl)
	return bl, nil
}

// accepting starts bl's accept loop: TLS handshakes first with client TLS, else plain.
func (p *Proxy) accepting(bl *brokerListener) {
	if p.clientTLS() {
		go p.acceptTLS(bl)
	} else {
		go p.acceptLoop(bl)
	}
}

func (p *Proxy) acceptLoop(bl *brokerListener) {
	defer close(bl.done)
	for {
		c, err := p.accept(bl)
		if err != nil {
			return
		}
		ctx := gnet.NewContext(gnet.NewNetConnContext(p.ctx, c), brokerConn{node: bl.node})
		res, err := p.engine.eng.Register(ctx)
		if err != nil {
			p.logConn(slog.LevelWarn, "closing client: cannot enroll", "client", c.RemoteAddr(), "node", bl.node, "err", err)
			_ = c.Close()
			continue
		}
		// gnet dups the socket and closes c itself; wait so errors are reported.
		if r, ok := p.engine.result(res); !ok {
			return
		} else if r.Err != nil {
			p.logConn(slog.LevelWarn, "closing client: cannot enroll", "client", c.RemoteAddr(), "node", bl.node, "err", r.Err)
		}
	}
}

// result waits for the outcome of a Register; false when the engine ended first (gnet may then
// never answer).
func (e *engine) result(res <-chan gnet.RegisteredResult) (gnet.RegisteredResult, bool) {
	select {
	case r := <-res:
		return r, true
	case <-e.ended:
		return gnet.RegisteredResult{}, false
	}
}

// Backoff of an accept loop after a temporary Accept error, as net/http's: descriptors run out
// in a burst of clients and come back as connections close, so giving up would stop a listener
// for good over a moment's shortage.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// accept returns the next connection of bl, waiting out temporary errors; it returns an error
// only when bl is closed (or on an error retrying cannot cure, which it logs).
func (p *Proxy) accept(bl *brokerListener) (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := bl.ln.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if !temporaryAcceptErr(err) {
			p.log.Error("listener stopped", "listener", listenerName(bl.node), "node", bl.node, "addr", bl.ln.Addr(), "err", err)
			return nil, err
		}
		delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
		if ok, suppressed := p.acceptLog.Allow(bl.ln.Addr().String()); ok {
			p.log.Error("accept failed; retrying", "listener", listenerName(bl.node), "node", bl.node, "addr", bl.ln.Addr(),
				"err", err, "retry_in", delay, "suppressed", suppressed)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-bl.stop:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

// temporaryAcceptErr reports whether an Accept error passes by itself: descriptors or buffers
// exhausted, a connection aborted while queued, a timeout.
func temporaryAcceptErr(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// close stops accepting and waits for the accept loop.
func (bl *brokerListener) close() {
	close(bl.stop)
	_ = bl.ln.Close()
	<-bl.done
}

// gnetLogger sends gnet's own logs to slog (at debug, except warnings and errors), keeping the
// last errors for engine.cause.
type gnetLogger struct {
	l    *slog.Logger
	errs *gnetErrors
}

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.error(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.error(fmt.Sprintf(f, a...)) }

func (g gnetLogger) error(msg string) {
	g.errs.add(msg)
	g.l.Error(msg, "component", "gnet")
}

// gnetErrors keeps gnet's last few error lines: a failing engine logs the root cause first
// ("Accept() failed due to error: too many open files"), then three lines on how it shut down.
type gnetErrors struct {
	mu    sync.Mutex
	lines []string
}

const gnetErrorsKept = 8

func (g *gnetErrors) add(msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.lines) == gnetErrorsKept {
		g.lines = g.lines[1:]
	}
	g.lines = append(g.lines, msg)
}

// last joins the lines kept, oldest first; "" when gnet logged no error.
func (g *gnetErrors) last() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.lines, "; ")
}
