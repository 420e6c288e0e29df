package e2e

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// TestSASLPassesThrough runs a broker that requires SASL: SaslHandshake and SaslAuthenticate go
// through the proxy to the broker unchanged, so good credentials (PLAIN and SCRAM-SHA-256)
// produce and consume, and a wrong password is refused. kfake answers a failed authentication by
// closing the connection without a response, so the refusal shows as EOF both directly and
// through the proxy; the exact error code cannot be checked against it.
func TestSASLPassesThrough(t *testing.T) {
	t.Parallel()
	const topic = "sasl"
	e := newEnvWith(t, envOptions{topics: []string{topic}, kafka: []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "admin", "admin-secret"),
		kfake.Superuser("SCRAM-SHA-256", "scram-admin", "scram-secret"),
	}})
	plainAuth := kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())
	want := harness.Lines("sasl-plain", 80)
	prod := e.kgoClient(t, "sasl-plain-producer", plainAuth)
	if err := prod.ProduceSync(testContext(t, 30*time.Second), kgoRecords(topic, want)...).FirstErr(); err != nil {
		t.Fatalf("produce with SASL/PLAIN: %v", err)
	}
	scramAuth := kgo.SASL(scram.Auth{User: "scram-admin", Pass: "scram-secret"}.AsSha256Mechanism())
	checkSame(t, "SASL/SCRAM consumer", want, e.kgoConsume(t, "sasl-scram-consumer", topic, len(want), nil, scramAuth))

	bad := e.kgoClient(t, "sasl-bad", kgo.SASL(plain.Auth{User: "admin", Pass: "wrong"}.AsMechanism()),
		kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))
	err := bad.Ping(testContext(t, 10*time.Second))
	if err == nil {
		t.Fatal("wrong password: Ping succeeded")
	}
	if !errors.Is(err, kerr.SaslAuthenticationFailed) && !errors.Is(err, io.EOF) {
		t.Fatalf("wrong password: got %v, want SASL_AUTHENTICATION_FAILED or the connection closed", err)
	}
	if e.proxy != nil {
		select {
		case <-e.proxy.Exited():
			t.Fatal("the proxy exited")
		default:
		}
	}
}
