package proxy

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestOwnConnectionsAuthenticate runs brokers that require SASL from every connection. With
// kafka.sasl credentials the proxy's own connections authenticate (PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512), so discovery maps the brokers and the readiness probe passes; without
// credentials the probe fails naming kafka.sasl, and with a wrong password it fails in SASL.
func TestOwnConnectionsAuthenticate(t *testing.T) {
	t.Parallel()
	kafka := newCluster(t, kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plain-user", "plain-secret"),
		kfake.Superuser("SCRAM-SHA-256", "scram256-user", "scram256-secret"),
		kfake.Superuser("SCRAM-SHA-512", "scram512-user", "scram512-secret"))
	cases := []struct {
		name    string
		mech    sasl.Mechanism
		wantErr string // "" : ready
	}{
		{"plain", plain.Auth{User: "plain-user", Pass: "plain-secret"}.AsMechanism(), ""},
		{"scram-sha-256", scram.Auth{User: "scram256-user", Pass: "scram256-secret"}.AsSha256Mechanism(), ""},
		{"scram-sha-512", scram.Auth{User: "scram512-user", Pass: "scram512-secret"}.AsSha512Mechanism(), ""},
		{"no credentials", nil, "set kafka.sasl.*"},
		{"wrong password", plain.Auth{User: "plain-user", Pass: "wrong"}.AsMechanism(), "check kafka.sasl.username, kafka.sasl.password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, _ := startProxyOpts(t, kafka.ListenAddrs(), 1, Options{UpstreamSASL: tc.mech})
			err := p.Ready(testCtx(t, 15*time.Second))
			if tc.wantErr == "" {
				checkDiscovered(t, p, err)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Ready: %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.mech != nil && strings.Contains(err.Error(), "set kafka.sasl") {
				t.Errorf("Ready: %v: the hint about missing credentials is wrong when they are set", err)
			}
		})
	}
}

// TestOwnConnectionsAuthenticateOverTLS runs SASL inside kafka.tls (sasl_ssl brokers with mTLS).
func TestOwnConnectionsAuthenticateOverTLS(t *testing.T) {
	t.Parallel()
	k := newTestPKI(t)
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{k.server}, ClientCAs: k.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	kafka := newCluster(t, kfake.NumBrokers(1), kfake.TLS(brokerTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "proxy", "proxy-secret"))
	p, _ := startProxyOpts(t, kafka.ListenAddrs(), 1, Options{
		UpstreamTLS:  &UpstreamTLS{CAFile: k.caFile, CertFile: k.clientCert, KeyFile: k.clientKey},
		UpstreamSASL: scram.Auth{User: "proxy", Pass: "proxy-secret"}.AsSha512Mechanism(),
	})
	checkDiscovered(t, p, p.Ready(testCtx(t, 15*time.Second)))
}

// checkDiscovered fails unless the readiness probe passed and discovery mapped broker 0.
func checkDiscovered(t *testing.T, p *Proxy, readyErr error) {
	t.Helper()
	if readyErr != nil {
		t.Fatalf("Ready: %v", readyErr)
	}
	if _, ok := p.upstreamOf(0); !ok {
		t.Fatal("discovery did not map broker 0")
	}
}
