package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
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
	k := testpki.New(t)
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{k.Server}, ClientCAs: k.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	kafka := newCluster(t, kfake.NumBrokers(1), kfake.TLS(brokerTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "proxy", "proxy-secret"))
	p, _ := startProxyOpts(t, kafka.ListenAddrs(), 1, Options{
		UpstreamTLS:  &UpstreamTLS{CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile},
		UpstreamSASL: scram.Auth{User: "proxy", Pass: "proxy-secret"}.AsSha512Mechanism(),
	})
	checkDiscovered(t, p, p.Ready(testCtx(t, 15*time.Second)))

	// A failure names the broker dialed, not the local end of the TLS bridge.
	bad, _ := startProxyOpts(t, kafka.ListenAddrs(), 1, Options{
		UpstreamTLS:  &UpstreamTLS{CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile},
		UpstreamSASL: scram.Auth{User: "proxy", Pass: "wrong"}.AsSha512Mechanism(),
	})
	if err := bad.Ready(testCtx(t, 15*time.Second)); err == nil || !strings.Contains(err.Error(), kafka.ListenAddrs()[0]) {
		t.Fatalf("Ready with a wrong password: %v; want an error naming broker %s", err, kafka.ListenAddrs()[0])
	}
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

// scriptedBroker answers each request of every connection with answer(request), for error paths
// kfake cannot produce (it closes the connection where Kafka answers with a code).
func scriptedBroker(t *testing.T, answer func(kmsg.Request) kmsg.Response) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var prefix [4]byte
					if _, err := io.ReadFull(c, prefix[:]); err != nil {
						return
					}
					frame := make([]byte, 4+int(protocol.FrameSize(prefix[:])))
					copy(frame, prefix[:])
					if _, err := io.ReadFull(c, frame[4:]); err != nil {
						return
					}
					h, err := protocol.ParseRequestHeader(frame)
					if err != nil {
						return
					}
					req, err := protocol.DecodeRequest(frame, h)
					if err != nil {
						return
					}
					resp := answer(req)
					resp.SetVersion(req.GetVersion())
					if _, err := c.Write(protocol.AppendResponse(nil, h.CorrelationID, resp)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestOwnConnectionsSASLErrors checks the words of each refusal a Kafka broker answers with a
// code: a listener without SASL (ILLEGAL_SASL_STATE), a mechanism it does not enable, and failed
// authentication with the broker's message.
func TestOwnConnectionsSASLErrors(t *testing.T) {
	t.Parallel()
	plainMech := plain.Auth{User: "u", Pass: "p"}.AsMechanism()
	cases := []struct {
		name      string
		handshake int16
		auth      int16
		want      []string
	}{
		{"no SASL on the listener", kerr.IllegalSaslState.Code, 0, []string{"listener does not use SASL", "unset kafka.sasl.*", "ILLEGAL_SASL_STATE"}},
		{"mechanism not enabled", kerr.UnsupportedSaslMechanism.Code, 0, []string{"does not enable mechanism PLAIN", "[SCRAM-SHA-512]", "set kafka.sasl.mechanism"}},
		{"bad credentials", 0, kerr.SaslAuthenticationFailed.Code, []string{"Invalid username or password", "SASL_AUTHENTICATION_FAILED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := scriptedBroker(t, func(req kmsg.Request) kmsg.Response {
				switch req.(type) {
				case *kmsg.SASLHandshakeRequest:
					r := kmsg.NewPtrSASLHandshakeResponse()
					r.ErrorCode = tc.handshake
					r.SupportedMechanisms = []string{"SCRAM-SHA-512"}
					return r
				case *kmsg.SASLAuthenticateRequest:
					r := kmsg.NewPtrSASLAuthenticateResponse()
					r.ErrorCode = tc.auth
					msg := "Authentication failed: Invalid username or password"
					r.ErrorMessage = &msg
					return r
				}
				return kmsg.NewPtrMetadataResponse()
			})
			p, _ := startProxyOpts(t, []string{addr}, 1, Options{UpstreamSASL: plainMech})
			err := p.Ready(testCtx(t, 15*time.Second))
			if err == nil {
				t.Fatal("Ready passed")
			}
			for _, w := range append(tc.want, addr) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Ready: %v; want it to contain %q", err, w)
				}
			}
		})
	}
}
