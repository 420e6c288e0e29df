package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// writeSelfSigned writes a self-signed server certificate with common name cn to cert/key.
func writeSelfSigned(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	testpki.WriteFiles(t, testpki.SelfSigned(t, cn), certFile, keyFile)
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

// A reload re-reads kafka.tls.ca: the tee's own clients (the dead-letter producer here), made
// before it, must dial with the new CA too, not only the proxy's broker connections.
func TestReloadedKafkaCAReachesTheDeadLetterProducer(t *testing.T) {
	dir := t.TempDir()
	wrong, right := testpki.NewCA(t, "ca-a"), testpki.NewCA(t, "ca-b")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, wrong.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{right.Issue(t, "broker", x509.ExtKeyUsageServerAuth)}}
	sinkDLQ := "    on_invalid: dlq\n    dlq_topic: dlq\n"
	e := startOpsFull(t, "table_a", sinkDLQ, []kfake.Opt{kfake.TLS(brokerTLS)},
		[]string{"--kafka.tls.enabled", "--kafka.tls.ca", caFile})
	if err := os.WriteFile(caFile, right.PEM(), 0o600); err != nil {
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
