package proxy

import (
	"crypto/tls"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// TLS handshakes in progress count against limits.max_connections: clients that open TCP
// connections and never send a ClientHello would otherwise each hold a goroutine, a descriptor
// and the handshake's buffers for tlsHandshakeTimeout however many there are. Beyond the limit
// they are closed at once; a failed handshake gives its place back.
func TestTLSHandshakesInProgressCountAgainstMaxConnections(t *testing.T) {
	k := testpki.New(t)
	c := newCluster(t, kfake.NumBrokers(1))
	const maxConns = 8
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{TLS: &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile},
		Limits: Limits{MaxConnections: maxConns}, Logger: quietLogger()})
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 200
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	for range n {
		conn, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn) // sends nothing: the handshake never starts
	}
	time.Sleep(500 * time.Millisecond)
	grown := runtime.NumGoroutine() - before
	t.Logf("%d silent TLS connections with max_connections %d: %d more goroutines, %d client connections counted",
		n, maxConns, grown, p.ClientConns())
	if grown > 4*maxConns {
		t.Fatalf("%d stalled TLS handshakes hold %d goroutines (and as many descriptors) with max_connections %d: "+
			"handshakes in progress are not bounded", n, grown, maxConns)
	}
	if got := p.ClientConns(); got != maxConns {
		t.Errorf("%d client connections counted with %d handshakes stalled, want %d", got, n, maxConns)
	}

	// The stalled handshakes fail as their clients leave, and give their places back.
	closeAll()
	deadline := time.Now().Add(5 * time.Second)
	for p.ClientConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d client connections still counted after every stalled client left", p.ClientConns())
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", p.Addr(),
		&tls.Config{RootCAs: k.Pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a TLS client after the stalled ones left: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := apiVersionsRoundTrip(conn, 1); err != nil {
		t.Fatalf("a TLS client after the stalled ones left: %v", err)
	}
	if got := p.ClientConns(); got != 1 {
		t.Errorf("%d client connections counted with one TLS client open, want 1", got)
	}
}
