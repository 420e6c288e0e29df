package e2e

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// saslKafka are kfake options requiring SASL, with a PLAIN and a SCRAM-SHA-256 superuser.
var saslKafka = []kfake.Opt{
	kfake.EnableSASL(),
	kfake.Superuser("PLAIN", "admin", "admin-secret"),
	kfake.Superuser("SCRAM-SHA-256", "scram-admin", "scram-secret"),
}

// proxyTLSArgs turns on client TLS at the proxy, optionally requiring client certificates.
func proxyTLSArgs(k *testpki.PKI, mtls bool) []string {
	args := []string{"--tls.enabled", "--tls.cert", k.CertFile, "--tls.key", k.KeyFile}
	if mtls {
		args = append(args, "--tls.client_ca", k.CAFile, "--tls.require_client_cert")
	}
	return args
}

// kcatRoundTrip produces lines to topic with kcat using the -X settings in conf, and consumes
// them back with the same settings.
func (e *env) kcatRoundTrip(t *testing.T, topic string, want []string, conf ...string) {
	t.Helper()
	var x []string
	for _, c := range conf {
		x = append(x, "-X", c)
	}
	e.kcat(t, joinLines(want), append([]string{"-P", "-t", topic}, x...)...)
	checkSame(t, "kcat "+strings.Join(conf, " "), want, e.kcatConsume(t, topic, x...))
}

// kcatRefused runs kcat -L with conf and requires it to fail, with want in its log when set.
func (e *env) kcatRefused(t *testing.T, what, want string, conf ...string) string {
	t.Helper()
	bin := requireTool(t, "kcat", kcatInstall)
	args := []string{"-L", "-b", e.bootstrap, "-m", "5"}
	for _, c := range conf {
		args = append(args, "-X", c)
	}
	res, err := harness.Run(testContext(t, 30*time.Second), 25*time.Second, nil, nil, bin, args...)
	if err == nil {
		t.Fatalf("%s: kcat -L succeeded:\n%s", what, res.Stdout)
	}
	if !strings.Contains(res.Stderr, want) {
		t.Fatalf("%s: kcat failed without %q in its log:\n%s", what, want, tailLines(res.Stderr, 10))
	}
	t.Logf("%s refused: %s", what, tailLines(res.Stderr, 1))
	return res.Stderr
}

// SASL PLAIN and SCRAM-SHA-256 from kcat (librdkafka) pass through the proxy to a broker that
// requires them; a wrong password is refused.
func TestKcatSASLPassesThrough(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{topics: []string{"kcat-plain", "kcat-scram"}, kafka: saslKafka})
	e.kcatRoundTrip(t, "kcat-plain", harness.Lines("kcat-sasl-plain", 50),
		"security.protocol=sasl_plaintext", "sasl.mechanisms=PLAIN", "sasl.username=admin", "sasl.password=admin-secret")
	e.kcatRoundTrip(t, "kcat-scram", harness.Lines("kcat-sasl-scram", 50),
		"security.protocol=sasl_plaintext", "sasl.mechanisms=SCRAM-SHA-256", "sasl.username=scram-admin", "sasl.password=scram-secret")
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
		user := map[string]string{"PLAIN": "admin", "SCRAM-SHA-256": "scram-admin"}[mech]
		e.kcatRefused(t, mech+" wrong password", "SASL authentication error",
			"security.protocol=sasl_plaintext", "sasl.mechanisms="+mech, "sasl.username="+user, "sasl.password=wrong")
	}
	e.proxyAlive(t)
}

// TLS terminated at the proxy: kcat with security.protocol=ssl, and SASL_SSL where SASL still
// passes through to the broker inside the proxy's TLS.
func TestKcatTLSAndSASLSSL(t *testing.T) {
	t.Parallel()
	if suite.direct {
		t.Skip("client TLS is terminated by the proxy")
	}
	k := testpki.New(t)
	e := newEnvWith(t, envOptions{topics: []string{"kcat-ssl", "kcat-sasl-ssl"}, kafka: saslKafka, proxyArgs: proxyTLSArgs(k, false)})
	e.kcatRoundTrip(t, "kcat-sasl-ssl", harness.Lines("kcat-sasl-ssl", 50),
		"security.protocol=sasl_ssl", "ssl.ca.location="+k.CAFile, "sasl.mechanisms=SCRAM-SHA-256",
		"sasl.username=scram-admin", "sasl.password=scram-secret")
	e.kcatRefused(t, "sasl_ssl wrong password", "SASL authentication error", "security.protocol=sasl_ssl", "ssl.ca.location="+k.CAFile,
		"sasl.mechanisms=PLAIN", "sasl.username=admin", "sasl.password=wrong")
	e.kcatRefused(t, "plaintext client on a TLS listener", "", "security.protocol=sasl_plaintext",
		"sasl.mechanisms=PLAIN", "sasl.username=admin", "sasl.password=admin-secret")

	// Go client through the same TLS listener with SASL/PLAIN.
	cl := e.kgoClient(t, "tls-sasl-kgo", kgo.DialTLSConfig(&tls.Config{RootCAs: k.Pool}),
		kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()))
	want := harness.Lines("kgo-sasl-ssl", 30)
	if err := cl.ProduceSync(testContext(t, 30*time.Second), kgoRecords("kcat-ssl", want)...).FirstErr(); err != nil {
		t.Fatalf("kgo produce over TLS+SASL: %v", err)
	}
	got := e.kcatConsume(t, "kcat-ssl", "-X", "security.protocol=sasl_ssl", "-X", "ssl.ca.location="+k.CAFile,
		"-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=admin", "-X", "sasl.password=admin-secret")
	checkSame(t, "kgo TLS+SASL produce, kcat consume", want, got)
	e.proxyAlive(t)
}

// mTLS at the proxy: kcat with a client certificate works, without one it is refused.
func TestKcatMTLS(t *testing.T) {
	t.Parallel()
	if suite.direct {
		t.Skip("client TLS is terminated by the proxy")
	}
	k := testpki.New(t)
	e := newEnvWith(t, envOptions{topics: []string{"kcat-mtls"}, proxyArgs: proxyTLSArgs(k, true)})
	e.kcatRoundTrip(t, "kcat-mtls", harness.Lines("kcat-mtls", 40), "security.protocol=ssl", "ssl.ca.location="+k.CAFile,
		"ssl.certificate.location="+k.ClientCertFile, "ssl.key.location="+k.ClientKeyFile)
	e.kcatRefused(t, "no client certificate", "", "security.protocol=ssl", "ssl.ca.location="+k.CAFile)
	e.proxyAlive(t)
}

// proxyAlive fails if the proxy process exited.
func (e *env) proxyAlive(t *testing.T) {
	t.Helper()
	if e.proxy == nil {
		return
	}
	select {
	case <-e.proxy.Exited():
		t.Fatal("the proxy exited")
	default:
	}
}

// The tee's own Kafka clients reach the brokers as the proxy does: with kafka.tls (here mTLS to
// brokers that require a client certificate), the dead-letter producer delivers an invalid
// record to dlq_topic, and the valid one is stored.
func TestTeeDeadLettersOverKafkaTLS(t *testing.T) {
	k := testpki.New(t)
	brokerTLS := &tls.Config{Certificates: []tls.Certificate{k.Server}, ClientCAs: k.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	e := newTeeEnv(t, teeOptions{
		topics:    []string{"tls-in", "tls-dlq"},
		kafka:     []kfake.Opt{kfake.TLS(brokerTLS)},
		sinksYAML: "  - topics: [tls-in]\n    auto_create: true\n    on_invalid: dlq\n    dlq_topic: tls-dlq\n",
		extraArgs: []string{"--kafka.tls.enabled", "--kafka.tls.ca", k.CAFile, "--kafka.tls.cert", k.ClientCertFile, "--kafka.tls.key", k.ClientKeyFile},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Not idempotent, few retries: a broken dead-letter path fails the test instead of retrying for ever.
	cl := e.kgoClient(t, "tls-dlq-producer", kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tls-in", Value: []byte(seedWithID(t, 1))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tls-in", Value: []byte("not a connect envelope")}).FirstErr(); err != nil {
		t.Fatalf("produce of an invalid record under on_invalid dlq: %v", err)
	}
	if got := e.kgoConsume(t, "tls-dlq-reader", "tls-dlq", 1, nil); len(got) != 1 || got[0] != "not a connect envelope" {
		t.Fatalf("dead-letter topic holds %q", got)
	}
	if rows := e.scan(t, "tls-in"); len(rows) != 1 {
		t.Fatalf("table holds %d rows, want the valid record only: %v", len(rows), rows)
	}
}
