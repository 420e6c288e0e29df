package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSAndLimitsKeys(t *testing.T) {
	c, err := Load("run", []string{"--kafka.bootstrap", "k:9092"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Enabled || c.Kafka.TLS.Enabled || c.Limits.MaxConnections != DefaultMaxConnections ||
		c.Limits.MaxInflightPerConnection != DefaultMaxInflightPerConnection || c.Limits.MaxQueuedBytes != DefaultMaxQueuedBytes ||
		c.Limits.MaxHeldTransactionRows != DefaultMaxHeldTransactionRows {
		t.Fatalf("defaults: tls %+v kafka.tls %+v limits %+v", c.TLS, c.Kafka.TLS, c.Limits)
	}
	c, err = Load("run", []string{"--kafka.bootstrap", "k:9092", "--tls.enabled", "--tls.cert", "s.pem", "--tls.key", "s.key",
		"--tls.client_ca", "ca.pem", "--tls.require_client_cert", "--limits.max_connections", "7"},
		[]string{"OKP_KAFKA__TLS__ENABLED=true", "OKP_KAFKA__TLS__CA=bca.pem", "OKP_KAFKA__TLS__SERVER_NAME=kafka.internal",
			"OKP_LIMITS__MAX_QUEUED_BYTES=2097152"})
	if err != nil {
		t.Fatal(err)
	}
	want := TLS{Enabled: true, Cert: "s.pem", Key: "s.key", ClientCA: "ca.pem", RequireClientCert: true}
	if c.TLS != want {
		t.Fatalf("tls %+v", c.TLS)
	}
	if !c.Kafka.TLS.Enabled || c.Kafka.TLS.CA != "bca.pem" || c.Kafka.TLS.ServerName != "kafka.internal" {
		t.Fatalf("kafka.tls %+v", c.Kafka.TLS)
	}
	if c.Limits.MaxConnections != 7 || c.Limits.MaxQueuedBytes != 2<<20 {
		t.Fatalf("limits %+v", c.Limits)
	}
	for args, msg := range map[string]string{
		"--tls.enabled": "tls.cert: tls.enabled needs both tls.cert and tls.key",
		"--tls.cert=a --tls.key=b --tls.enabled --tls.require_client_cert": "tls.require_client_cert: needs tls.client_ca",
		"--tls.cert=a":                                    "tls.enabled: ",
		"--kafka.tls.enabled --kafka.tls.cert=c":          "kafka.tls.cert: set both",
		"--kafka.tls.ca=x":                                "kafka.tls.enabled: ",
		"--limits.max_connections=-1":                     "limits.max_connections: -1",
		"--limits.max_inflight_per_connection=0":          "limits.max_inflight_per_connection: 0",
		"--limits.max_queued_bytes=1000":                  "limits.max_queued_bytes: 1000 is below",
		"--limits.max_outbound_bytes_per_connection=1000": "limits.max_outbound_bytes_per_connection: 1000 is below",
		"--limits.max_held_transaction_rows=-1":           "limits.max_held_transaction_rows: -1",
		"--kafka.transaction_max_timeout=10ms":            "kafka.transaction_max_timeout: 10ms is below 1s",
	} {
		_, err := Load("run", append([]string{"--kafka.bootstrap", "k:9092"}, strings.Fields(args)...), nil)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err = %v, want %q", args, err, msg)
		}
	}
}

// TestKafkaSASLKeys checks kafka.sasl from flags and the environment (the password's advised
// home), the mechanism's case, and each invalid combination's message.
func TestKafkaSASLKeys(t *testing.T) {
	c, err := Load("run", []string{"--kafka.bootstrap", "k:9092"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.SASL.Enabled() {
		t.Fatalf("default kafka.sasl %+v", c.Kafka.SASL)
	}
	c, err = Load("run", []string{"--kafka.bootstrap", "k:9092", "--kafka.sasl.mechanism", "scram-sha-512", "--kafka.sasl.username", "proxy"},
		[]string{"OKP_KAFKA__SASL__PASSWORD=s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (KafkaSASL{Mechanism: SASLScramSHA512, Username: "proxy", Password: "s3cret"}); c.Kafka.SASL != want {
		t.Fatalf("kafka.sasl %+v, want %+v", c.Kafka.SASL, want)
	}
	for args, msg := range map[string]string{
		"--kafka.sasl.username=u": "kafka.sasl.mechanism: kafka.sasl.username or kafka.sasl.password is set but no mechanism",
		"--kafka.sasl.mechanism=GSSAPI --kafka.sasl.username=u --kafka.sasl.password=p": `kafka.sasl.mechanism: "GSSAPI" is not supported`,
		"--kafka.sasl.mechanism=PLAIN --kafka.sasl.password=p":                          "kafka.sasl.username: required with kafka.sasl.mechanism PLAIN",
		"--kafka.sasl.mechanism=PLAIN --kafka.sasl.username=u":                          "kafka.sasl.password: required with kafka.sasl.mechanism PLAIN",
	} {
		_, err := Load("run", append([]string{"--kafka.bootstrap", "k:9092"}, strings.Fields(args)...), nil)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err = %v, want %q", args, err, msg)
		}
	}
}

// TestCredentialsMustBeTextInYAML: an unquoted password YAML reads as a number is refused,
// naming the key and not the value; quoted, it is kept as written.
func TestCredentialsMustBeTextInYAML(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bad := write("kafka:\n  bootstrap: [k:9092]\n  sasl:\n    mechanism: PLAIN\n    username: proxy\n    password: 012345\n")
	_, err := Load("run", []string{"--config", bad}, nil)
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.password: the configuration file gives") || strings.Contains(err.Error(), "12345") {
		t.Fatalf("unquoted numeric password: %v", err)
	}
	good := write("kafka:\n  bootstrap: [k:9092]\n  sasl:\n    mechanism: PLAIN\n    username: proxy\n    password: \"012345\"\n")
	c, err := Load("run", []string{"--config", good}, nil)
	if err != nil || c.Kafka.SASL.Password != "012345" {
		t.Fatalf("quoted password: %v %+v", err, c)
	}
}
