package e2e

import (
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

const kcatInstall = "apt-get install kcat"

var (
	// Any host:port librdkafka mentions in its broker debug log: every one it names was learned or dialed.
	anyAddrRE = regexp.MustCompile(`\b(\d{1,3}(?:\.\d{1,3}){3}:\d{1,5})\b`)
	// "127.0.0.1:40001/1: Added new broker with NodeId 1" binds an address to a node id.
	addedBrokerRE = regexp.MustCompile(`(\d{1,3}(?:\.\d{1,3}){3}:\d{1,5})/[^:\s]+: Added new broker with NodeId (-?\d+)`)
)

// kcat runs kcat against the env's bootstrap with broker debug logging on, and checks that every
// broker address in that log is a proxy address (node-bound where librdkafka says which node).
func (e *env) kcat(t *testing.T, stdin string, args ...string) harness.Result {
	t.Helper()
	bin := requireTool(t, "kcat", kcatInstall)
	full := append([]string{"-b", e.bootstrap, "-d", "broker"}, args...)
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	res, err := harness.Run(testContext(t, 45*time.Second), 40*time.Second, in, nil, bin, full...)
	if err != nil {
		t.Fatal(err)
	}
	learned := map[int32][]string{}
	for _, m := range anyAddrRE.FindAllStringSubmatch(res.Stderr, -1) {
		learned[-1] = append(learned[-1], m[1])
	}
	for _, m := range addedBrokerRE.FindAllStringSubmatch(res.Stderr, -1) {
		id, _ := strconv.Atoi(m[2])
		learned[int32(id)] = append(learned[int32(id)], m[1])
	}
	e.checkLearned(t, "kcat "+strings.Join(args, " "), learned)
	return res
}

// kcatConsume reads topic from the beginning to its end through the proxy, one value per line.
func (e *env) kcatConsume(t *testing.T, topic string, extra ...string) []string {
	t.Helper()
	args := append([]string{"-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n"}, extra...)
	return splitLines(e.kcat(t, "", args...).Stdout)
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func joinLines(v []string) string { return strings.Join(v, "\n") + "\n" }

// dataBatches drops control batches (transaction markers) from stored batches.
func dataBatches(bs []kmsg.RecordBatch) (data, control []kmsg.RecordBatch) {
	for _, b := range bs {
		if b.Attributes&0x20 != 0 {
			control = append(control, b)
		} else {
			data = append(data, b)
		}
	}
	return data, control
}

// TestKcatProduceAcksAll produces with acks=all through the proxy and consumes the same values back.
func TestKcatProduceAcksAll(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newEnv(t, "kcat-acks")
	want := harness.Lines("acks-all", 200)
	e.kcat(t, joinLines(want), "-P", "-t", "kcat-acks", "-X", "acks=all")
	checkSame(t, "kcat acks=all", want, e.kcatConsume(t, "kcat-acks"))
}

// TestKcatIdempotent produces with enable.idempotence=true (InitProducerId, sequence numbers)
// and checks the broker stored idempotent batches and the values come back.
func TestKcatIdempotent(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newEnv(t, "kcat-idem")
	want := harness.Lines("idem", 200)
	e.kcat(t, joinLines(want), "-P", "-t", "kcat-idem", "-X", "enable.idempotence=true")
	checkSame(t, "kcat idempotent", want, e.kcatConsume(t, "kcat-idem"))
	data, _ := dataBatches(e.storedBatches(t, "kcat-idem"))
	if len(data) == 0 {
		t.Fatal("broker stored no batches")
	}
	for _, b := range data {
		if b.ProducerID < 0 {
			t.Fatalf("stored batch at offset %d has producer id %d: idempotence did not reach the broker", b.FirstOffset, b.ProducerID)
		}
	}
}

// TestKcatGroupConsume consumes through a consumer group (FindCoordinator, JoinGroup, SyncGroup,
// OffsetCommit all via the proxy).
func TestKcatGroupConsume(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newEnv(t, "kcat-group")
	want := harness.Lines("group", 150)
	e.kcat(t, joinLines(want), "-P", "-t", "kcat-group", "-X", "acks=all")
	got := splitLines(e.kcat(t, "", "-G", "kcat-grp-1", "-o", "beginning", "-e", "-q", "-f", "%s\n", "kcat-group").Stdout)
	checkSame(t, "kcat group consume", want, got)
}

// TestKcatMetadata lists the cluster with kcat -L -J and checks every broker is a proxy address.
func TestKcatMetadata(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newEnv(t, "kcat-meta")
	res := e.kcat(t, "", "-L", "-J")
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &md); err != nil {
		t.Fatalf("parse kcat -L -J output %q: %v", res.Stdout, err)
	}
	nodes := map[int32]string{}
	for _, b := range md.Brokers {
		nodes[b.ID] = b.Name
	}
	e.checkNodes(t, "kcat -L", nodes)
	found := false
	for _, tp := range md.Topics {
		if tp.Topic != "kcat-meta" {
			continue
		}
		found = true
		if len(tp.Partitions) != numPartitions {
			t.Errorf("topic kcat-meta has %d partitions, want %d", len(tp.Partitions), numPartitions)
		}
		for _, p := range tp.Partitions {
			if want := e.kafka.LeaderFor("kcat-meta", p.Partition); p.Leader != want {
				t.Errorf("partition %d leader %d, broker says %d", p.Partition, p.Leader, want)
			}
		}
	}
	if !found {
		t.Errorf("kcat -L did not list topic kcat-meta: %s", res.Stdout)
	}
}

// TestKcatTransactional produces inside a transaction (committed at EOF) and reads it back with
// read_committed; the broker must hold transactional batches and a commit marker.
func TestKcatTransactional(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newEnv(t, "kcat-txn")
	want := harness.Lines("txn", 120)
	e.kcat(t, joinLines(want), "-P", "-t", "kcat-txn", "-X", "transactional.id=kcat-tx-1")
	checkSame(t, "kcat transactional", want, e.kcatConsume(t, "kcat-txn", "-X", "isolation.level=read_committed"))
	data, control := dataBatches(e.storedBatches(t, "kcat-txn"))
	if len(data) == 0 || len(control) == 0 {
		t.Fatalf("broker stored %d data and %d control batches, want both > 0", len(data), len(control))
	}
	for _, b := range data {
		if b.Attributes&0x10 == 0 {
			t.Fatalf("stored batch at offset %d is not transactional (attributes %#x)", b.FirstOffset, b.Attributes)
		}
	}
}

// TestKcatGzipCompresses checks that librdkafka 2.0.2 really gzips through the proxy: it only
// does so when the Produce minimum version it is offered is 0, so this pins the ApiVersions clamp.
func TestKcatGzipCompresses(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	if suite.direct {
		t.Skip("direct mode: kfake's Produce minimum is v3, so librdkafka 2.0.2 does not compress")
	}
	e := newEnv(t, "kcat-gzip")
	want := make([]string, 300)
	for i := range want {
		want[i] = strings.Repeat("compressible-payload-", 8) + strconv.Itoa(i)
	}
	// One partition and a long linger make few, large batches, which librdkafka compresses.
	e.kcat(t, joinLines(want), "-P", "-t", "kcat-gzip", "-p", "0", "-z", "gzip", "-X", "linger.ms=50")
	checkSame(t, "kcat gzip", want, e.kcatConsume(t, "kcat-gzip"))
	data, _ := dataBatches(e.storedBatches(t, "kcat-gzip"))
	if len(data) == 0 {
		t.Fatal("broker stored no batches")
	}
	for _, b := range data {
		if codec := b.Attributes & 0x07; codec != 1 {
			t.Fatalf("stored batch at offset %d (%d records) has codec %d, want 1 (gzip): librdkafka fell back to no compression", b.FirstOffset, b.NumRecords, codec)
		}
	}
}
