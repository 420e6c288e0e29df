package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// connHook records the address of every broker connection a kgo client opens, keyed by node id
// (seed connections, which kgo numbers internally, count as unknown node -1).
type connHook struct {
	mu    sync.Mutex
	addrs map[int32][]string
}

var _ kgo.HookBrokerConnect = (*connHook)(nil)

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *connHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, conn net.Conn, _ error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.addrs == nil {
		h.addrs = map[int32][]string{}
	}
	node := meta.NodeID
	if node < 0 {
		node = -1
	}
	h.addrs[node] = append(h.addrs[node], net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))))
	if conn != nil {
		h.addrs[node] = append(h.addrs[node], conn.RemoteAddr().String())
	}
}

func (h *connHook) learned() map[int32][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int32][]string{}
	for k, v := range h.addrs {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// kgoClient makes a franz-go client seeded with the env's bootstrap; its connections are checked
// against the proxy addresses when the test ends.
func (e *env) kgoClient(t *testing.T, name string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	h := &connHook{}
	opts = append([]kgo.Opt{kgo.SeedBrokers(e.bootstrap), kgo.WithHooks(h), kgo.ClientID("okp-e2e-" + name)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo client %s: %v", name, err)
	}
	t.Cleanup(func() {
		cl.Close()
		e.checkLearned(t, "kgo "+name, h.learned())
	})
	return cl
}

// kgoConsume reads topic from the start through the proxy until it has n records (or, with
// stopAt, until stopAt returns true for a record) and returns the values in arrival order.
func (e *env) kgoConsume(t *testing.T, name, topic string, n int, stopAt func(*kgo.Record) bool, opts ...kgo.Opt) []string {
	t.Helper()
	opts = append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)
	cl := e.kgoClient(t, name, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("kgo consume %s: %v after %d records (want %d)", topic, err, len(got), n)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("kgo consume %s partition %d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Value))
			if stopAt != nil && stopAt(r) {
				done = true
			}
		})
		if done || (stopAt == nil && len(got) >= n) {
			return got
		}
	}
}

func kgoRecords(topic string, values []string) []*kgo.Record {
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		rs[i] = &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(v)}
	}
	return rs
}

// TestKgoIdempotentCodecs produces with the idempotent franz-go producer in each codec through
// the proxy, checks the broker stored exactly that codec (the proxy forwards batches untouched)
// and consumes the values back.
func TestKgoIdempotentCodecs(t *testing.T) {
	t.Parallel()
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		id    int8
	}{
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	}
	var topics []string
	for _, c := range codecs {
		topics = append(topics, "kgo-"+c.name)
	}
	e := newEnv(t, topics...)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "kgo-" + c.name
			want := make([]string, 500)
			for i := range want {
				want[i] = fmt.Sprintf("%s %s %05d", c.name, strings.Repeat("abc", 40), i)
			}
			prod := e.kgoClient(t, "producer-"+c.name, kgo.ProducerBatchCompression(c.codec), kgo.RequiredAcks(kgo.AllISRAcks()))
			ctx := testContext(t, 30*time.Second)
			if err := prod.ProduceSync(ctx, kgoRecords(topic, want)...).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", c.name, err)
			}
			data, _ := dataBatches(e.storedBatches(t, topic))
			if len(data) == 0 {
				t.Fatal("broker stored no batches")
			}
			for _, b := range data {
				if got := b.Attributes & 7; int8(got) != c.id {
					t.Fatalf("stored batch at offset %d has codec %d, want %d (%s)", b.FirstOffset, got, c.id, c.name)
				}
				if b.ProducerID < 0 {
					t.Fatalf("stored batch at offset %d has no producer id: not idempotent", b.FirstOffset)
				}
			}
			checkSame(t, "kgo "+c.name, want, e.kgoConsume(t, "consumer-"+c.name, topic, len(want), nil))
		})
	}
}

// TestKgoTransactions commits one transaction and aborts another through the proxy; a
// read_committed consumer must see exactly the committed records, a read_uncommitted one both.
func TestKgoTransactions(t *testing.T) {
	t.Parallel()
	const topic = "kgo-txn"
	e := newEnv(t, topic)
	prod := e.kgoClient(t, "txn-producer",
		kgo.TransactionalID("okp-e2e-txn"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(topic),
	)
	ctx := testContext(t, 60*time.Second)
	txn := func(values []string, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatalf("begin transaction: %v", err)
		}
		rs := kgoRecords(topic, values)
		for i, r := range rs {
			r.Partition = int32(i % numPartitions)
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce in transaction: %v", err)
		}
		if err := prod.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction (commit=%v): %v", commit, err)
		}
	}
	committed := harness.Lines("committed", 60)
	aborted := harness.Lines("aborted", 60)
	// One end marker per partition lets a consumer know it has read every partition to its end.
	var ends []string
	for p := 0; p < numPartitions; p++ {
		ends = append(ends, fmt.Sprintf("end-%d", p))
	}
	txn(committed, kgo.TryCommit)
	txn(aborted, kgo.TryAbort)
	txn(ends, kgo.TryCommit)

	untilAllEnds := func() func(*kgo.Record) bool {
		seen := map[string]bool{}
		return func(r *kgo.Record) bool {
			if strings.HasPrefix(string(r.Value), "end-") {
				seen[string(r.Value)] = true
			}
			return len(seen) == numPartitions
		}
	}
	got := e.kgoConsume(t, "read-committed", topic, 0, untilAllEnds(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	checkSame(t, "read_committed", append(append([]string(nil), committed...), ends...), got)

	all := e.kgoConsume(t, "read-uncommitted", topic, 0, untilAllEnds(), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	checkSame(t, "read_uncommitted", append(append(append([]string(nil), committed...), aborted...), ends...), all)
}
