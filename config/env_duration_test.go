package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Kubernetes gives every container OKP_SERVICE_HOST, OKP_PORT_9093_TCP, … when the namespace has
// a Service named okp (okp-admin: OKP_ADMIN_SERVICE_HOST, …), as Docker links do. They name no
// setting and must not stop the proxy from starting; a misspelled setting still does.
func TestLoadIgnoresServiceLinkVariables(t *testing.T) {
	links := []string{
		"OKP_SERVICE_HOST=10.96.0.12", "OKP_SERVICE_PORT=9093", "OKP_SERVICE_PORT_KAFKA=9093",
		"OKP_PORT=tcp://10.96.0.12:9093", "OKP_PORT_9093_TCP=tcp://10.96.0.12:9093",
		"OKP_PORT_9093_TCP_PROTO=tcp", "OKP_PORT_9093_TCP_PORT=9093", "OKP_PORT_9093_TCP_ADDR=10.96.0.12",
		"OKP_ADMIN_SERVICE_HOST=10.96.0.13", "OKP_ADMIN_SERVICE_PORT=9644", "OKP_ADMIN_PORT=tcp://10.96.0.13:9644",
		"OKP_ADMIN_PORT_9644_TCP=tcp://10.96.0.13:9644",
	}
	args := []string{"--kafka.bootstrap", "k:9092"}
	if _, err := Load("run", args, links); err != nil {
		t.Fatalf("service-link variables refused: %v", err)
	}
	_, err := Load("run", args, append(links, "OKP_OPENMLDB__PASWORD=x"))
	if err == nil || !strings.Contains(err.Error(), "openmldb.pasword") {
		t.Fatalf("a misspelled setting next to service links: %v", err)
	}
}

// A duration of 0 is the same without a unit (drain_timeout "0s: close at once"), and koanf's
// day unit (1d) was accepted before unknown keys were checked; neither is refused now.
func TestLoadDurationsThatNeedNoUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	y := "kafka:\n  bootstrap: [k:9092]\n  transaction_max_timeout: 1d\nshutdown:\n  drain_timeout: 0\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("run", []string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shutdown.DrainTimeout != 0 || c.Kafka.TransactionMaxTimeout != 24*time.Hour {
		t.Fatalf("drain_timeout %v, transaction_max_timeout %v", c.Shutdown.DrainTimeout, c.Kafka.TransactionMaxTimeout)
	}
	if _, err := Load("run", []string{"--config", path}, []string{"OKP_SHUTDOWN__DRAIN_TIMEOUT=30"}); err == nil {
		t.Fatal("a non-zero duration without a unit (environment) loaded")
	}
}

// A setting written with its dotted name in the file (the name flags and the README table use)
// is not a setting there; the error says to nest it instead of suggesting its last part.
func TestLoadDottedKeyInFileSaysNestIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	y := "kafka.bootstrap: [k:9092]\nsinks:\n  - topics: [t]\n    index.ts: c9\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load("run", []string{"--config", path}, nil)
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{"kafka.bootstrap (a dotted name: nest it", "sinks[0].index.ts (a dotted name: nest it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "did you mean bootstrap") {
		t.Errorf("error %q suggests the key's last part", err)
	}
}
