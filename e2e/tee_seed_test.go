package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTeeSeedFlow is the seed guide without Kafka Connect: the guide's openmldb-sink.properties
// (only its ZooKeeper address and root path substituted) given to `run --connector_config` (the
// flag as it exists; TestTeeConnectorConfigFlagAsDocumented covers the documented dash form), the
// guide's message.json sent with `kcat -P -t topic1 FILE`, and `scan kafka_test.topic1` through
// ZooKeeper printing exactly the row the guide's SELECT shows. The record is also in the topic.
func TestTeeSeedFlow(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	props, err := os.ReadFile(filepath.Join(seedPath, "openmldb-sink.properties"))
	if err != nil {
		t.Fatalf("seed properties: %v", err)
	}
	const seedURL = "zk=127.0.0.1:2181&zkPath=/openmldb"
	if !strings.Contains(string(props), seedURL) {
		t.Fatalf("seed properties lack %q:\n%s", seedURL, props)
	}
	e := newTeeEnv(t, teeOptions{topics: []string{"topic1"}, proxyArgs: func(e *teeEnv) []string {
		path := filepath.Join(e.dir, "openmldb-sink.properties")
		text := strings.Replace(string(props), seedURL, "zk="+e.zkAddr+"&zkPath="+e.zkPath, 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{"--connector_config", path}
	}})
	msgFile, err := filepath.Abs(filepath.Join(seedPath, "message.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kcatProduce(t, "topic1", "", msgFile); err != nil {
		t.Fatal(err)
	}
	got := e.scan(t, "topic1")
	const want = `{"c1_int16":1,"c2_int32":2,"c3_int64":3,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":"2022-04-27","c9_timestamp":1651051906000}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("scan kafka_test.topic1 printed %q, want exactly\n%s", got, want)
	}
	// kcat -P FILE sends the whole file, trailing newline included, as one record.
	file, err := os.ReadFile(msgFile)
	if err != nil {
		t.Fatal(err)
	}
	stored := e.storedValues(t, "topic1")
	if len(stored) != 1 || stored[0] != string(file) {
		t.Fatalf("topic1 holds %q, want message.json's bytes once", stored)
	}
}

// TestTeeConnectorConfigFlagAsDocumented checks the spelling the README and the issue give,
// `--connector-config FILE` (the key is connector_config, so only the underscore form may exist).
func TestTeeConnectorConfigFlagAsDocumented(t *testing.T) {
	t.Parallel()
	props, err := os.ReadFile(filepath.Join(seedPath, "openmldb-sink.properties"))
	if err != nil {
		t.Fatalf("seed properties: %v", err)
	}
	e := newTeeEnv(t, teeOptions{topics: []string{"topic1"}, proxyArgs: func(e *teeEnv) []string {
		path := filepath.Join(e.dir, "openmldb-sink.properties")
		text := strings.Replace(string(props), "zk=127.0.0.1:2181&zkPath=/openmldb", "zk="+e.zkAddr+"&zkPath="+e.zkPath, 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{"--connector-config", path}
	}})
	if !strings.Contains(e.proxy.Logs(), "sinks=1") {
		t.Fatalf("proxy did not load the sink from --connector-config:\n%s", e.proxy.Logs())
	}
}
