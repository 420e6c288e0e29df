package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testPKI is a CA with a server certificate (127.0.0.1, localhost) and a client certificate,
// written as PEM files.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	clientCert, clientKey     string
	pool                      *x509.CertPool
	client                    tls.Certificate
	server                    tls.Certificate
	caKey                     *ecdsa.PrivateKey
	ca                        *x509.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "okp test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	k := &testPKI{dir: dir, caKey: caKey, ca: ca, pool: x509.NewCertPool()}
	k.pool.AddCert(ca)
	k.caFile = filepath.Join(dir, "ca.pem")
	writePEM(t, k.caFile, "CERTIFICATE", caDER)
	k.certFile, k.keyFile, k.server = k.issue(t, "server", "okp-server", x509.ExtKeyUsageServerAuth)
	k.clientCert, k.clientKey, k.client = k.issue(t, "client", "okp-client", x509.ExtKeyUsageClientAuth)
	return k
}

// issue writes name.pem and name-key.pem signed by the CA and returns their paths.
func (k *testPKI) issue(t *testing.T, name, cn string, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.ca, &key.PublicKey, k.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, key2 := filepath.Join(k.dir, name+".pem"), filepath.Join(k.dir, name+"-key.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, key2, "EC PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(cert, key2)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key2, pair
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

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
	k := newTestPKI(t)
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(3, "tls"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 3, Options{TLS: &ServerTLS{CertFile: k.certFile, KeyFile: k.keyFile}})
	ctx := testCtx(t, 60*time.Second)
	produceConsume(t, ctx, "tls", 60, kgo.SeedBrokers(p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.pool}))

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
	k := newTestPKI(t)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "mtls"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{TLS: &ServerTLS{CertFile: k.certFile, KeyFile: k.keyFile, ClientCAFile: k.caFile, RequireClientCert: true}})
	ctx := testCtx(t, 60*time.Second)

	_, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.Addr(), &tls.Config{RootCAs: k.pool})
	if err == nil {
		// TLS 1.3 reports the refusal on the first read.
		conn, _ := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: k.pool})
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = conn.Read(b[:])
		conn.Close()
	}
	if err == nil {
		t.Fatal("client without certificate was accepted")
	}
	t.Logf("refused without a client certificate: %v", err)

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.pool}), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))
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
		kgo.DialTLSConfig(&tls.Config{RootCAs: k.pool, Certificates: []tls.Certificate{k.client}}))
}

// TLS originated to kfake listening with TLS (requiring the proxy's client certificate), with
// plain clients, and with TLS on both sides.
func TestUpstreamTLS(t *testing.T) {
	k := newTestPKI(t)
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{k.server}, ClientCAs: k.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	c := newCluster(t, kfake.NumBrokers(2), kfake.SeedTopics(2, "up-tls", "both-tls"), kfake.TLS(brokerTLS))
	up := &UpstreamTLS{CAFile: k.caFile, CertFile: k.clientCert, KeyFile: k.clientKey}
	p, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{UpstreamTLS: up})
	ctx := testCtx(t, 60*time.Second)
	produceConsume(t, ctx, "up-tls", 40, kgo.SeedBrokers(p.Addr()))

	p2, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{UpstreamTLS: up, TLS: &ServerTLS{CertFile: k.certFile, KeyFile: k.keyFile}})
	produceConsume(t, ctx, "both-tls", 40, kgo.SeedBrokers(p2.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.pool}))

	// Without the CA the broker's certificate is refused: the client's connection is closed.
	p3, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{UpstreamTLS: &UpstreamTLS{CertFile: k.clientCert, KeyFile: k.clientKey}})
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
	k := newTestPKI(t)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "reload"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{TLS: &ServerTLS{CertFile: k.certFile, KeyFile: k.keyFile}})
	peerCN := func() string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.Addr(), &tls.Config{RootCAs: k.pool})
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
	cert, key, _ := k.issue(t, "rotated", "okp-server-2", x509.ExtKeyUsageServerAuth)
	for src, dst := range map[string]string{cert: k.certFile, key: k.keyFile} {
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
	if err := os.WriteFile(k.keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	if cn := peerCN(); cn != "okp-server-2" {
		t.Fatalf("after failed reload served %q", cn)
	}
	produceConsume(t, testCtx(t, 30*time.Second), "reload", 10, kgo.SeedBrokers(p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: k.pool}))
}
