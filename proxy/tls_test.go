package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// startProxyOpts is startProxy with options: Listen, BrokerPorts, Bootstrap and Logger are filled.
func startProxyOpts(t testing.TB, bootstrap []string, nodes int, o Options) (*Proxy, map[int32]int) {
	t.Helper()
	ports := freePorts(t, nodes+1)
	bp := map[int32]int{}
	for i := range nodes {
		bp[int32(i)] = ports[i+1]
	}
	o.Listen = "127.0.0.1:" + strconv.Itoa(ports[0])
	o.BrokerPorts = bp
	o.Bootstrap = bootstrap
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p, bp
}

// produceConsume produces n records to topic through a client with opts and consumes them back.
func produceConsume(t *testing.T, ctx context.Context, topic string, n int, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic), kgo.RequestRetries(2))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := map[string]bool{}
	var recs []*kgo.Record
	for i := range n {
		v := topic + "-" + strconv.Itoa(i)
		want[v] = true
		recs = append(recs, kgo.StringRecord(v))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume: %d records missing: %v", len(want), ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		for _, r := range fs.Records() {
			if !want[string(r.Value)] {
				t.Fatalf("unexpected or duplicate record %q", r.Value)
			}
			delete(want, string(r.Value))
		}
	}
}

// TLS terminated on the bootstrap and every broker listener, plain to kfake.
func TestClientTLS(t *testing.T) {
	k := testpki.New(t)
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(3, "tls"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 3, Options{TLS: &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile}})
	ctx := testCtx(t, 60*time.Second)
	produceConsume(t, ctx, "tls", 60, kgo.SeedBrokers(p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.Pool}))

	// A plain client on a TLS listener gets no Kafka answer.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second), kgo.DialTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err == nil {
		t.Fatal("plain client got an answer from a TLS listener")
	}
}

// mTLS: a client without a certificate is refused; with one from the CA it works.
func TestClientMTLS(t *testing.T) {
	k := testpki.New(t)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "mtls"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{TLS: &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile, ClientCAFile: k.CAFile, RequireClientCert: true}})
	ctx := testCtx(t, 60*time.Second)

	_, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.Addr(), &tls.Config{RootCAs: k.Pool})
	if err == nil {
		// TLS 1.3 reports the refusal on the first read.
		conn, _ := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: k.Pool})
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = conn.Read(b[:])
		conn.Close()
	}
	if err == nil {
		t.Fatal("client without certificate was accepted")
	}
	t.Logf("refused without a client certificate: %v", err)

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.Pool}), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := cl.Ping(pctx); err == nil {
		t.Fatal("kgo without a client certificate: Ping succeeded")
	}
	cancel()
	cl.Close()

	produceConsume(t, ctx, "mtls", 20, kgo.SeedBrokers(p.Addr()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: k.Pool, Certificates: []tls.Certificate{k.Client}}))
}

// TLS originated to kfake listening with TLS (requiring the proxy's client certificate), with
// plain clients, and with TLS on both sides.
func TestUpstreamTLS(t *testing.T) {
	k := testpki.New(t)
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{k.Server}, ClientCAs: k.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	c := newCluster(t, kfake.NumBrokers(2), kfake.SeedTopics(2, "up-tls", "both-tls"), kfake.TLS(brokerTLS))
	up := &UpstreamTLS{CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile}
	p, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{UpstreamTLS: up})
	ctx := testCtx(t, 60*time.Second)
	produceConsume(t, ctx, "up-tls", 40, kgo.SeedBrokers(p.Addr()))

	p2, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{UpstreamTLS: up, TLS: &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile}})
	produceConsume(t, ctx, "both-tls", 40, kgo.SeedBrokers(p2.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.Pool}))

	// Without the CA the broker's certificate is refused: the client's connection is closed.
	p3, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{UpstreamTLS: &UpstreamTLS{CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile}})
	cl, err := kgo.NewClient(kgo.SeedBrokers(p3.Addr()), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err == nil {
		t.Fatal("proxy accepted a broker certificate from an unknown CA")
	}
}

// ReloadTLS serves a rotated certificate to new connections; a broken file keeps the old one.
func TestReloadTLS(t *testing.T) {
	k := testpki.New(t)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "reload"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{TLS: &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile}})
	peerCN := func() string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.Addr(), &tls.Config{RootCAs: k.Pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := peerCN(); cn != "okp-server" {
		t.Fatalf("served %q", cn)
	}
	// Rotate: issue a new certificate into the same files.
	cert, key, _ := k.IssueFiles(t, "rotated", "okp-server-2", x509.ExtKeyUsageServerAuth)
	for src, dst := range map[string]string{cert: k.CertFile, key: k.KeyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(); cn != "okp-server-2" {
		t.Fatalf("after reload served %q", cn)
	}
	if err := os.WriteFile(k.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	if cn := peerCN(); cn != "okp-server-2" {
		t.Fatalf("after failed reload served %q", cn)
	}
	produceConsume(t, testCtx(t, 30*time.Second), "reload", 10, kgo.SeedBrokers(p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.Pool}))
}
