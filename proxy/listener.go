package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// engine is the one gnet engine of the proxy. It listens on the bootstrap address; connections
// accepted by broker listeners are enrolled into its event loops, so the number of event loops
// does not grow with the number of brokers (each loop blocks an OS thread in epoll_wait).
type engine struct {
	gnet.BuiltinEventEngine
	p       *Proxy
	eng     gnet.Engine
	started chan struct{} // closed by the first OnTick: the event loops are registered
	once    sync.Once
	done    chan error
}

// brokerConn tags a connection enrolled from the listener of a broker node.
type brokerConn struct{ node int32 }

// eventLoops is how many gnet event loops serve clients: half the CPUs, at least one, leaving
// processors to the upstream reader and writer goroutines.
func eventLoops() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// startEngine binds the bootstrap address and returns once the engine runs.
func (p *Proxy) startEngine(ctx context.Context) (*engine, error) {
	e := &engine{p: p, started: make(chan struct{}), done: make(chan error, 1)}
	addr, err := p.engineAddr()
	if err != nil {
		return nil, err
	}
	go func() {
		e.done <- gnet.Run(e, addr,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(eventLoops()),
			// Enrolling from accept goroutines needs a balancer other than round-robin.
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithReuseAddr(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			// The ticker starts after the event loops are registered: its first tick is the
			// signal that Register (used by broker listeners) is safe.
			gnet.WithTicker(true),
			gnet.WithLogger(gnetLogger{p.log}))
	}()
	select {
	case <-e.started:
		return e, nil
	case err := <-e.done:
		return nil, fmt.Errorf("listen %s: %w", p.opts.Listen, err)
	case <-ctx.Done():
		return nil, fmt.Errorf("listen %s: %w", p.opts.Listen, ctx.Err())
	}
}

// stop shuts the engine down, closing every client connection, and waits for it.
func (e *engine) stop(ctx context.Context) error {
	if err := e.eng.Stop(ctx); err != nil {
		return fmt.Errorf("stop engine: %w", err)
	}
	select {
	case <-e.done:
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
// attaches an enrolled broker connection to its session.
func (e *engine) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	switch x := c.Context().(type) {
	case *upstream:
		return nil, x.s.upOpened(c)
	case *hookConn:
		return nil, gnet.None
	case brokerConn:
		return nil, e.open(c, x.node)
	case *tlsClient:
		return nil, e.open(c, x.node)
	default:
		return nil, e.open(c, -1)
	}
}

func (e *engine) open(c gnet.Conn, node int32) gnet.Action {
	if e.p.refuseDraining(c) {
		return gnet.Close
	}
	s := newSession(e.p, c, node)
	if !e.p.admitConn(s.remote, node) {
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
		x.s.upClosed(err)
	case *hookConn:
		x.onClose(err)
	}
	return gnet.None
}

// OnTraffic handles requests from a client, responses from a broker, or a hook connection's input.
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
	done chan struct{}
}

// listenBroker opens the listener of node on addr.
func (p *Proxy) listenBroker(addr string, node int32) (*brokerListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s for node %d: %w", addr, node, err)
	}
	bl := &brokerListener{node: node, ln: ln, done: make(chan struct{})}
	if p.clientTLS() {
		go p.acceptTLS(bl)
	} else {
		go p.acceptLoop(bl)
	}
	return bl, nil
}

func (p *Proxy) acceptLoop(bl *brokerListener) {
	defer close(bl.done)
	for {
		c, err := bl.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Error("broker listener stopped", "node", bl.node, "addr", bl.ln.Addr(), "err", err)
			}
			return
		}
		ctx := gnet.NewContext(gnet.NewNetConnContext(p.ctx, c), brokerConn{node: bl.node})
		res, err := p.engine.eng.Register(ctx)
		if err != nil {
			p.log.Warn("closing client: cannot enroll", "client", c.RemoteAddr(), "node", bl.node, "err", err)
			_ = c.Close()
			continue
		}
		// gnet dups the socket and closes c itself; wait so errors are reported.
		if r := <-res; r.Err != nil {
			p.log.Warn("closing client: cannot enroll", "client", c.RemoteAddr(), "node", bl.node, "err", r.Err)
		}
	}
}

// close stops accepting and waits for the accept loop.
func (bl *brokerListener) close() {
	_ = bl.ln.Close()
	<-bl.done
}

// gnetLogger sends gnet's own logs to slog (at debug, except warnings and errors).
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
