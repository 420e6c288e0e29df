package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// writeSelfSigned writes a self-signed server certificate with common name cn to cert/key.
func writeSelfSigned(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func servedCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// A reload the tee rejects must apply nothing: new TLS certificates on disk stay unused until a
// reload that succeeds (they were put in use before the sinks were checked).
func TestRejectedReloadKeepsTLSCertificates(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeSelfSigned(t, "old-cert", cert, key)
	tlsKeys := "tls:\n  enabled: true\n  cert: " + cert + "\n  key: " + key + "\n"
	e := startOpsExtra(t, "table_a", tlsKeys)
	if cn := servedCN(t, e.listen); cn != "old-cert" {
		t.Fatalf("served %q", cn)
	}
	writeSelfSigned(t, "new-cert", cert, key)
	// exactly_once on an auto-created table without an index: refused by the tee's Reload.
	e.writeConfig(t, "table_a", "    exactly_once: true\n"+tlsKeys)
	err := e.reload(t)
	if err == nil || !strings.Contains(err.Error(), "exactly_once") {
		t.Fatalf("reload: %v, want rejected for exactly_once", err)
	}
	if cn := servedCN(t, e.listen); cn != "old-cert" {
		t.Errorf("reload was reported rejected, but new connections are served %q: the TLS part was applied", cn)
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: k, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// A reload re-reads kafka.tls.ca: the tee's own clients (the dead-letter producer here), made
// before it, must dial with the new CA too, not only the proxy's broker connections.
func TestReloadedKafkaCAReachesTheDeadLetterProducer(t *testing.T) {
	dir := t.TempDir()
	wrong, right := newTestCA(t, "ca-a"), newTestCA(t, "ca-b")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, wrong.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{right.serverCert(t)}}
	sinkDLQ := "    on_invalid: dlq\n    dlq_topic: dlq\n"
	e := startOpsFull(t, "table_a", sinkDLQ, []kfake.Opt{kfake.TLS(brokerTLS)},
		[]string{"--kafka.tls.enabled", "--kafka.tls.ca", caFile})
	if err := os.WriteFile(caFile, right.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.listen), kgo.ProduceRequestTimeout(4*time.Second), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, seedRecord(1)).FirstErr(); err != nil {
		t.Fatalf("valid record through the proxy after the CA was fixed: %v", err)
	}
	bad := seedRecord(2)
	bad.Value = []byte(strings.Replace(string(bad.Value), `"c3_int64":2`, `"c3_int64":"two"`, 1))
	if err := cl.ProduceSync(ctx, bad).FirstErr(); err != nil {
		t.Fatalf("invalid record (on_invalid: dlq) after the CA was fixed and reloaded: %v", err)
	}
}
