package e2e

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// debianPython is Debian's interpreter: the python3 first on PATH may be a pyenv build that cannot
// see the dist-packages python3-confluent-kafka and python3-kafka install into.
const debianPython = "/usr/bin/python3"

// runRoundtrip runs a testdata round-trip script against the env and checks its consumed values
// and the broker addresses the client reported.
func (e *env) runRoundtrip(t *testing.T, script, client, topic string, n int) {
	t.Helper()
	prefix := client
	ctx := testContext(t, 90*time.Second)
	res, err := harness.Run(ctx, 80*time.Second, nil, nil, debianPython, "testdata/"+script,
		"--bootstrap", e.bootstrap, "--topic", topic, "--prefix", prefix,
		"--count", strconv.Itoa(n), "--group", "okp-e2e-"+client, "--timeout", "60")
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Brokers  map[string]string `json:"brokers"`
		Consumed []string          `json:"consumed"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("%s output %q: %v (stderr %s)", script, res.Stdout, err, res.Stderr)
	}
	checkSame(t, client, harness.Lines(prefix, n), out.Consumed)
	nodes := map[int32]string{}
	for id, addr := range out.Brokers {
		n, err := strconv.Atoi(id)
		if err != nil {
			t.Fatalf("%s broker id %q: %v", client, id, err)
		}
		nodes[int32(n)] = addr
	}
	e.checkNodes(t, client, nodes)
}

// TestPythonConfluentKafka runs Debian's python3-confluent-kafka (librdkafka 2.0.2): acks=all
// producer, group consumer, and the brokers its metadata lists.
func TestPythonConfluentKafka(t *testing.T) {
	t.Parallel()
	requirePython(t, "confluent_kafka", "python3-confluent-kafka")
	e := newEnv(t, "py-confluent")
	e.runRoundtrip(t, "confluent_roundtrip.py", "confluent", "py-confluent", 200)
}

// TestPythonKafkaPython runs Debian's python3-kafka (kafka-python 2.0.2, ApiVersions v0 and
// Metadata v1): acks=all producer, group consumer, and the brokers its metadata lists.
func TestPythonKafkaPython(t *testing.T) {
	t.Parallel()
	requirePython(t, "kafka", "python3-kafka")
	e := newEnv(t, "py-kafka")
	e.runRoundtrip(t, "kafka_python_roundtrip.py", "kafka-python", "py-kafka", 200)
}
