// Package proxy is the gnet front of the Kafka proxy: a bootstrap listener plus one listener per
// upstream broker node, per-connection sessions that forward request frames as bytes to one
// upstream connection and return responses strictly in request order, rewriting broker addresses
// (through package protocol) and letting a Hook intercept chosen API keys.
//
// Ports: the bootstrap listener is Options.Listen; node id n of the upstream cluster gets
// Options.BrokerPorts[n] if set, else port(Listen) + 1 + n, on the host of Listen. A node's
// listener opens the first time the node appears in a Metadata, FindCoordinator or
// DescribeCluster response (or at start, from a Metadata request of the proxy's own), and every
// broker address handed to clients becomes AdvertisedHost:that port, with node ids unchanged.
// Bootstrap connections go to the first reachable Options.Bootstrap broker; a connection to a
// node's listener goes to that node's latest known address.
//
// Threads: one gnet engine serves every connection (the broker listeners are plain accept loops
// that enroll their connections into it). Each client's upstream connection is dialed on a
// goroutine and enrolled into the client's own event loop, so requests go from the client's
// OnTraffic straight to the broker socket and responses from the broker's OnTraffic straight to
// the client socket, in request order, with no locks or goroutine hand-offs. Only hook work
// (Begin, Finish) runs on other goroutines, returning to the loop with EventLoop.Execute.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/lograte"
)

// Options configures a Proxy.
type Options struct {
	// Listen is the bootstrap listener address, host:port with a non-zero port.
	Listen string
	// AdvertisedHost is the host put in every broker address handed to clients; defaults to the
	// host of Listen.
	AdvertisedHost string
	// BrokerPorts overrides the listener port of some node ids. Others get port(Listen) + 1 + id.
	BrokerPorts map[int32]int
	// Bootstrap lists the upstream brokers (host:port) that bootstrap connections go to.
	Bootstrap []string
	// MaxFrameBytes bounds request frames from clients (payload bytes); default 100 MiB.
	MaxFrameBytes int
	// Hook, if set, intercepts the API keys it chooses. Nil keeps the proxy pure L4.
	Hook Hook
	// Logger receives the proxy's logs; default slog.Default().
	Logger *slog.Logger
	// DialTimeout bounds each upstream dial; default 10s.
	DialTimeout time.Duration
	// TLS, if set, terminates client TLS on every listener (tls.go).
	TLS *ServerTLS
	// UpstreamTLS, if set, dials the brokers with TLS.
	UpstreamTLS *UpstreamTLS
	// UpstreamSASL, if set, authenticates the connections the proxy opens to brokers for itself
	// (discovery, readiness). Clients' connections are never authenticated by the proxy: their
	// SASL passes through.
	UpstreamSASL sasl.Mechanism
	// Limits bounds connections, in-flight requests and queued bytes (limits.go).
	Limits Limits
	// Metrics receives the proxy's counters (metrics.go); nil keeps a private, unregistered set.
	Metrics *Metrics
}

// Proxy is a running (or startable) Kafka proxy. Create with New, then Start, then Close.
type Proxy struct {
	opts       Options
	log        *slog.Logger
	listenPort int
	ctx        context.Context
	cancel     context.CancelFunc
	next       atomic.Uint32 // rotates the first bootstrap broker tried

	engine *engine
	tls    *tlsHolder // nil without TLS
	lim    limiter
	// refusedLog keeps a reconnect storm at max_connections to one log line a second.
	refusedLog *lograte.Limiter
	frames     framePool // buffers of gathered request frames (framepool.go)
	loopsMu    sync.Mutex
	loops      map[gnet.EventLoop]*Loop // ConnInfo.Loop of each event loop (loop.go)
	ops                                 // drain, readiness, in-flight accounting (ops.go)

	// failed is closed once the proxy can no longer serve (Failed, Err); failErr says why.
	failed   chan struct{}
	failOnce sync.Once
	failErr  error
	// acceptLog keeps an accept loop retrying through descriptor exhaustion to one line a second.
	acceptLog *lograte.Limiter
	// connLog keeps a reconnect storm's lines about single client connections to connLogBurst a
	// second per message (logConn; the metrics count every connection).
	connLog *lograte.Limiter

	mu      sync.Mutex
	nodes   map[int32]*node
	brokers []*brokerListener
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// node is one upstream broker as last seen in a response.
type node struct {
	id       int32
	port     int    // proxy listener port
	upstream string // broker host:port
	startMu  sync.Mutex
	ln       *brokerListener
	// unusable says why port cannot be listened on (out of range, taken by broker_ports, ...);
	// portLogged: that was reported (once: every response names the node).
	unusable   string
	portLogged bool
}

// New validates opts and returns a proxy that is not listening yet.
func New(opts Options) (*Proxy, error) {
	host, port, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", opts.Listen, err)
	}
	lp, err := strconv.Atoi(port)
	if err != nil || lp <= 0 || lp > 65535 {
		return nil, fmt.Errorf("listen %q: need a port 1-65535", opts.Listen)
	}
	if len(opts.Bootstrap) == 0 {
		return nil, errors.New("no bootstrap brokers")
	}
	byPort := map[int]int32{}
	for id, bp := range opts.BrokerPorts {
		if bp <= 0 || bp > 65535 {
			return nil, fmt.Errorf("broker_ports: port %d of node %d: need 1-65535", bp, id)
		}
		if bp == lp {
			return nil, fmt.Errorf("broker_ports: port %d of node %d is the bootstrap listener's", bp, id)
		}
		if other, dup := byPort[bp]; dup {
			return nil, fmt.Errorf("broker_ports: nodes %d and %d both map to port %d", min(id, other), max(id, other), bp)
		}
		byPort[bp] = id
	}
	if opts.AdvertisedHost == "" {
		opts.AdvertisedHost = host
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = 100 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	th, err := newTLSHolder(opts.TLS, opts.UpstreamTLS)
	if err != nil {
		return nil, err
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{opts: opts, log: opts.Logger, listenPort: lp, ctx: ctx, cancel: cancel, nodes: map[int32]*node{}, tls: th,
		failed: make(chan struct{})}
	p.metrics = opts.Metrics
	p.metrics.proxy.Store(p)
	limits := opts.Limits
	p.lim.limits.Store(&limits)
	p.refusedLog = lograte.New(time.Second)
	p.acceptLog = lograte.New(time.Second)
	p.connLog = lograte.NewBurst(time.Second, connLogBurst)
	return p, nil
}

// Start binds the bootstrap listener and returns once it accepts connections. It then learns the
// cluster's brokers in the background (a Metadata request to a bootstrap broker) and opens their
// listeners, so clients that remember broker addresses can reconnect after a proxy restart.
func (p *Proxy) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", p.opts.Listen, err)
	}
	e, err := p.startEngine(ctx)
	if err != nil {
		_ = ln.Close()
		return err
	}
	p.engine = e
	p.startBootstrap(ln)
	go p.discover()
	return nil
}

// EngineAddr is the gnet engine's own listener (a loopback UDP socket where nothing is served;
// every client listener is a Go accept loop enrolling into the engine). Tests use it to stop the
// engine from outside with gnet.Stop, as a failing engine would stop.
func (p *Proxy) EngineAddr() string {
	if p.engine == nil {
		return ""
	}
	return p.engine.addr
}

// Addr is the bootstrap listener address.
func (p *Proxy) Addr() string { return p.opts.Listen }

// BrokerAddr returns the address clients are told for node id, and whether its listener is open.
func (p *Proxy) BrokerAddr(id int32) (string, bool) {
	p.mu.Lock()
	n := p.nodes[id]
	p.mu.Unlock()
	if n == nil {
		return "", false
	}
	n.startMu.Lock()
	defer n.startMu.Unlock()
	return net.JoinHostPort(p.opts.AdvertisedHost, strconv.Itoa(n.port)), n.ln != nil
}

// Failed is closed when the proxy stops serving by itself: its gnet engine ended without Close
// (which closes every client connection and the bootstrap listener), so it accepts nobody any
// more. Err then says why, and Ready fails. The process should exit and be restarted; Close is
// still to be called.
func (p *Proxy) Failed() <-chan struct{} { return p.failed }

// Err is why the proxy failed (see Failed), nil while it has not.
func (p *Proxy) Err() error {
	select {
	case <-p.failed:
		return p.failErr
	default:
		return nil
	}
}

// fail records that the proxy cannot serve any more and stops its remaining listeners, so
// clients are refused (and try elsewhere) rather than accepted and closed.
func (p *Proxy) fail(err error) {
	p.failOnce.Do(func() {
		p.failErr = err
		close(p.failed)
		p.log.Error("proxy stopped serving; restart it", "err", err)
		p.closeListeners()
	})
}

// Close stops every listener and closes every client and upstream connection. Later calls
// wait for the first and return its result.
func (p *Proxy) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closeListeners()
		p.cancel()
		if p.engine == nil {
			return
		}
		p.closeErr = p.engine.stop(ctx)
	})
	return p.closeErr
}

// portFor is the proxy port of node id.
func (p *Proxy) portFor(id int32) (port int, unusable string) {
	if port, ok := p.opts.BrokerPorts[id]; ok {
		return port, ""
	}
	port = p.listenPort + 1 + int(id)
	switch {
	case id < 0:
		return 0, "negative node id"
	case port > 65535:
		return port, "its port is out of range"
	}
	for other, bp := range p.opts.BrokerPorts {
		if bp == port {
			return 0, fmt.Sprintf("its port (%d) is node %d's in broker_ports", port, other)
		}
	}
	return port, ""
}

// mapAddr is the protocol.AddrMapper of every response: it records where node id lives upstream,
// makes sure the node's listener is open, and returns the proxy's address for the node.
func (p *Proxy) mapAddr(id int32, host string, port int32) (string, int32) {
	up := net.JoinHostPort(host, strconv.Itoa(int(port)))
	p.mu.Lock()
	n := p.nodes[id]
	if n == nil {
		n = &node{id: id}
		n.port, n.unusable = p.portFor(id)
		p.nodes[id] = n
	}
	closed := p.closed
	p.mu.Unlock()

	n.startMu.Lock()
	defer n.startMu.Unlock()
	if n.upstream != up {
		if n.upstream != "" {
			p.log.Info("broker moved", "node", id, "from", n.upstream, "to", up)
		}
		n.upstream = up
	}
	if n.unusable != "" && !n.portLogged {
		// Clients are told this port and cannot connect: say why, once.
		n.portLogged = true
		p.log.Error("no listener for broker node: "+n.unusable+"; map it with broker_ports",
			"node", id, "port", n.port, "rule", "listen port + 1 + node id", "upstream", up)
	}
	if n.ln == nil && !closed && n.unusable == "" {
		addr := net.JoinHostPort(hostOf(p.opts.Listen), strconv.Itoa(n.port))
		ln, err := p.listenBroker(addr, id)
		if err != nil {
			// Clients will fail to connect to this node and refresh metadata, which retries here.
			p.log.Error("cannot open broker listener", "node", id, "addr", addr, "err", err)
		} else {
			n.ln = ln
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				ln.close()
				n.ln = nil
			} else {
				p.brokers = append(p.brokers, ln)
				p.mu.Unlock()
				p.log.Info("broker listener open", "node", id, "listen", addr, "upstream", up)
			}
		}
	}
	return p.opts.AdvertisedHost, int32(n.port)
}

// upstreamOf returns the broker address of node id.
func (p *Proxy) upstreamOf(id int32) (string, bool) {
	p.mu.Lock()
	n := p.nodes[id]
	p.mu.Unlock()
	if n == nil {
		return "", false
	}
	n.startMu.Lock()
	defer n.startMu.Unlock()
	return n.upstream, n.upstream != ""
}

// dialUpstream connects a session to its broker: node's address, or for bootstrap sessions the
// first reachable bootstrap broker (the first one tried rotates between sessions). It also
// returns the address dialed: with kafka.tls the connection's own remote address is the local
// bridge's, not the broker's.
func (p *Proxy) dialUpstream(ctx context.Context, nodeID int32) (net.Conn, string, error) {
	d := net.Dialer{Timeout: p.opts.DialTimeout}
	if nodeID >= 0 {
		addr, ok := p.upstreamOf(nodeID)
		if !ok {
			return nil, "", fmt.Errorf("node %d: upstream address unknown", nodeID)
		}
		c, err := p.dialBroker(ctx, &d, addr)
		if err != nil {
			if ctx.Err() == nil { // else the client left: no broker failure
				p.metrics.dialFailed(addr)
			}
			return nil, "", fmt.Errorf("dial node %d at %s: %w", nodeID, addr, err)
		}
		return c, addr, nil
	}
	bs := p.opts.Bootstrap
	first := int(p.next.Add(1)) % len(bs)
	var errs []error
	for i := range bs {
		addr := bs[(first+i)%len(bs)]
		c, err := p.dialBroker(ctx, &d, addr)
		if err == nil {
			return c, addr, nil
		}
		if ctx.Err() != nil { // the client left: no broker failure
			return nil, "", fmt.Errorf("dial bootstrap broker %s: %w", addr, err)
		}
		p.metrics.dialFailed(addr)
		errs = append(errs, err)
	}
	return nil, "", fmt.Errorf("no bootstrap broker reachable: %w", errors.Join(errs...))
}

// hostOf returns the host part of a host:port.
func hostOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}
