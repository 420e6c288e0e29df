package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// ServerTLS terminates client TLS on every listener of the proxy (bootstrap and per-broker).
type ServerTLS struct {
	// CertFile and KeyFile are the PEM certificate (chain) and key presented to clients.
	CertFile, KeyFile string
	// ClientCAFile, if set, is a PEM CA bundle client certificates are verified against, and
	// clients are asked for one.
	ClientCAFile string
	// RequireClientCert refuses clients that present no certificate from ClientCAFile (mTLS).
	RequireClientCert bool
}

// UpstreamTLS originates TLS to the brokers.
type UpstreamTLS struct {
	// CAFile is a PEM bundle broker certificates are verified against; empty: system roots.
	CAFile string
	// CertFile and KeyFile, if set, are presented to brokers that require client certificates.
	CertFile, KeyFile string
	// ServerName is verified in broker certificates instead of each broker's host.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate (tests only).
	InsecureSkipVerify bool
}

// tlsHandshakeTimeout bounds a client's TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// tlsHolder keeps the current TLS configurations. Connections read them at handshake time, so a
// reload changes what new connections get and leaves open ones alone.
type tlsHolder struct {
	srv    *ServerTLS
	up     *UpstreamTLS
	server atomic.Pointer[tls.Config]
	client atomic.Pointer[tls.Config]
	// listen is the static config of the listeners, which asks server for the current one.
	listen *tls.Config
}

// newTLSHolder loads the files of srv and up (either may be nil); nil when both are.
func newTLSHolder(srv *ServerTLS, up *UpstreamTLS) (*tlsHolder, error) {
	if srv == nil && up == nil {
		return nil, nil
	}
	h := &tlsHolder{srv: srv, up: up}
	h.listen = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return h.server.Load(), nil
		},
	}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// reload re-reads every file; on any error nothing changes.
func (h *tlsHolder) reload() error {
	commit, err := h.prepare()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// prepare loads the files again and returns what puts them in use; nothing changes before.
func (h *tlsHolder) prepare() (commit func(), err error) {
	var srv, cli *tls.Config
	if h.srv != nil {
		if srv, err = serverConfig(h.srv); err != nil {
			return nil, err
		}
	}
	if h.up != nil {
		if cli, err = clientConfig(h.up); err != nil {
			return nil, err
		}
	}
	return func() {
		if srv != nil {
			h.server.Store(srv)
		}
		if cli != nil {
			h.client.Store(cli)
		}
	}, nil
}

func serverConfig(o *ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert %s / tls.key %s: %w", o.CertFile, o.KeyFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if o.ClientCAFile != "" {
		pool, err := loadPool(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if o.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if o.RequireClientCert {
		return nil, errors.New("tls.require_client_cert: needs tls.client_ca")
	}
	return c, nil
}

// ClientConfig builds the TLS configuration o describes, for other Kafka clients of the process
// (the tee's dead-letter producer and coordinator queries) to reach the brokers as the proxy does.
func (o *UpstreamTLS) ClientConfig() (*tls.Config, error) { return clientConfig(o) }

func clientConfig(o *UpstreamTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pool, err := loadPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca: %w", err)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert %s / kafka.tls.key %s: %w", o.CertFile, o.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// ReloadTLS re-reads the certificate, key and CA files of client TLS and broker TLS. New
// connections use the new files; open connections are not touched. On error the previous
// certificates stay in use. Without TLS configured it does nothing.
func (p *Proxy) ReloadTLS() error {
	commit, err := p.PrepareTLS()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareTLS is ReloadTLS in two steps, for a reload that must apply everything or nothing: it
// loads every certificate, key and CA file and returns what puts them in use (it cannot fail);
// until that runs, nothing changes.
func (p *Proxy) PrepareTLS() (commit func(), err error) {
	if p.tls == nil {
		return func() {}, nil
	}
	c, err := p.tls.prepare()
	if err != nil {
		return nil, fmt.Errorf("reload TLS: %w", err)
	}
	return func() {
		c()
		p.log.Info("TLS certificates reloaded")
	}, nil
}

// UpstreamTLSConfig is the TLS configuration broker connections use now (kafka.tls, as last
// loaded), nil without one. Do not modify it.
func (p *Proxy) UpstreamTLSConfig() *tls.Config {
	if p.tls == nil || p.tls.up == nil {
		return nil
	}
	return p.tls.client.Load()
}

// clientTLS reports whether the listeners terminate TLS.
func (p *Proxy) clientTLS() bool { return p.tls != nil && p.tls.srv != nil }

// dialBroker dials a broker, with TLS when configured. A TLS connection is handed back as the
// gnet-side end of a bridge (gnet needs a socket it can poll).
func (p *Proxy) dialBroker(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || p.tls == nil || p.tls.up == nil {
		return c, err
	}
	cfg := p.tls.client.Load().Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = hostOf(addr)
	}
	tc := tls.Client(c, cfg)
	hctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("TLS handshake with broker %s: %w", addr, err)
	}
	inner, _, err := bridge(tc)
	if err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("broker %s: %w", addr, err)
	}
	return inner, nil
}

// tlsClient is the gnet context of a TLS client connection's bridged socket.
type tlsClient struct {
	node   int32
	remote string
	bridge *bridgeState
	// opened is set by OnOpen; from then the session (or OnClose, when open refused the
	// connection) uncounts it.
	opened atomic.Bool
	once   sync.Once
	p      *Proxy
}

// release uncounts a connection admitted by acceptTLS that got no session.
func (x *tlsClient) release() { x.once.Do(x.p.connClosed) }

// acceptTLS accepts TLS clients for one listener (node -1 is bootstrap): each connection is
// handshaken on its own goroutine and bridged into the engine like a plain connection. A
// connection counts against MaxConnections from its accept: a handshake in progress holds a
// goroutine, a descriptor and buffers for up to tlsHandshakeTimeout, and clients that never send
// a ClientHello would otherwise pile up without bound.
func (p *Proxy) acceptTLS(bl *brokerListener) {
	defer close(bl.done)
	for {
		c, err := p.accept(bl)
		if err != nil {
			return
		}
		if !p.admitConn(c.RemoteAddr().String(), bl.node) {
			_ = c.Close()
			continue
		}
		go p.serveTLS(c, bl.node)
	}
}

// serveTLS handshakes an admitted connection and enrolls it into the engine, uncounting it if it
// does not get there.
func (p *Proxy) serveTLS(c net.Conn, node int32) {
	remote := c.RemoteAddr().String()
	tc := tls.Server(c, p.tls.listen)
	ctx, cancel := context.WithTimeout(p.ctx, tlsHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		p.connClosed()
		p.logConn(slog.LevelWarn, "closing client: TLS handshake failed", "client", remote, "node", node, "err", err)
		_ = c.Close()
		return
	}
	inner, bst, err := bridge(tc)
	if err != nil {
		p.connClosed()
		p.logConn(slog.LevelWarn, "closing client: TLS bridge", "client", remote, "node", node, "err", err)
		_ = tc.Close()
		return
	}
	x := &tlsClient{node: node, remote: remote, bridge: bst, p: p}
	gctx := gnet.NewContext(gnet.NewNetConnContext(p.ctx, inner), x)
	res, err := p.engine.eng.Register(gctx)
	if err != nil {
		x.release()
		p.logConn(slog.LevelWarn, "closing client: cannot enroll", "client", remote, "node", node, "err", err)
		_ = inner.Close()
		return
	}
	// gnet dups the socket and closes inner itself. Its result comes after OnOpen, if OnOpen
	// runs at all (it does not when the socket cannot be added to the poller).
	r, _ := p.engine.result(res)
	if !x.opened.Load() {
		x.release()
	}
	if r.Err != nil {
		p.logConn(slog.LevelWarn, "closing client: cannot enroll", "client", remote, "node", node, "err", r.Err)
	}
}
