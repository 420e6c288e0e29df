package e2e

import (
	"errors"
	"io"
	"net/http"
	"strings"
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

// TestTeeOwnConnectionsUseKafkaSASL runs brokers that require SASL from every connection, with
// the proxy given credentials of its own (kafka.sasl, SCRAM-SHA-256) while the producer
// authenticates with PLAIN through the proxy. The proxy's own connections authenticate: /readyz
// answers 200 (its Metadata probe is refused unauthenticated), and the dead-letter producer
// delivers the invalid record while the valid one reaches the table.
func TestTeeOwnConnectionsUseKafkaSASL(t *testing.T) {
	e := newTeeEnv(t, teeOptions{
		topics:    []string{"sasl-in", "sasl-dlq"},
		kafka:     saslKafka,
		sinksYAML: "  - topics: [sasl-in]\n    auto_create: true\n    on_invalid: dlq\n    dlq_topic: sasl-dlq\n",
		extraArgs: []string{"--kafka.sasl.mechanism", "SCRAM-SHA-256", "--kafka.sasl.username", "scram-admin", "--kafka.sasl.password", "scram-secret"},
	})
	ctx := testContext(t, 30*time.Second)
	if code, body := httpGet(t, "http://"+e.proxy.AdminAddr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	plainAuth := kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())
	// Not idempotent, few retries: a broken dead-letter path fails the test instead of retrying for ever.
	cl := e.kgoClient(t, "sasl-dlq-producer", plainAuth, kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sasl-in", Value: []byte(seedWithID(t, 1))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sasl-in", Value: []byte("not a connect envelope")}).FirstErr(); err != nil {
		t.Fatalf("produce of an invalid record under on_invalid dlq: %v", err)
	}
	if got := e.kgoConsume(t, "sasl-dlq-reader", "sasl-dlq", 1, nil, plainAuth); len(got) != 1 || got[0] != "not a connect envelope" {
		t.Fatalf("dead-letter topic holds %q", got)
	}
	if rows := e.scan(t, "sasl-in"); len(rows) != 1 {
		t.Fatalf("table holds %d rows, want the valid record only: %v", len(rows), rows)
	}
}

// httpGet returns the status and body of a GET.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}
