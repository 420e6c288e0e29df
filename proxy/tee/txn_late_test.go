package tee_test

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// rawTxnBatch is rawProducerBatch marked transactional.
func rawTxnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	b := rawProducerBatch(pid, epoch, seq, values...)
	b[22] |= 0x10 // attributes (int16 at 21): transactional
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// rawTxn drives one transactional producer by hand, request by request, as a client that keeps
// its epoch across an abort (transaction version 1) may.
type rawTxn struct {
	t     *testing.T
	cl    *kgo.Client
	id    string
	pid   int64
	epoch int16
}

func newRawTxn(t *testing.T, ctx context.Context, cl *kgo.Client, id string) *rawTxn {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = &id, 60_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v, code %d", err, resp.ErrorCode)
	}
	return &rawTxn{t: t, cl: cl, id: id, pid: resp.ProducerID, epoch: resp.ProducerEpoch}
}

// addPartition adds partitions of topic (none: partition 0) to the transaction.
func (x *rawTxn) addPartition(ctx context.Context, topic string, partitions ...int32) {
	x.t.Helper()
	if len(partitions) == 0 {
		partitions = []int32{0}
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = x.id, x.pid, x.epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, partitions
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, x.cl)
	if err != nil {
		x.t.Fatalf("AddPartitionsToTxn: %v", err)
	}
	for _, tt := range resp.Topics {
		for _, p := range tt.Partitions {
			if p.ErrorCode != 0 {
				x.t.Fatalf("AddPartitionsToTxn %s[%d]: code %d", tt.Topic, p.Partition, p.ErrorCode)
			}
		}
	}
}

// produce sends one transactional batch to partition 0 of topic with a 1 s timeout.
func (x *rawTxn) produce(ctx context.Context, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	x.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = &x.id, -1, 1000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	resp, err := req.RequestWith(ctx, x.cl)
	if err != nil {
		x.t.Fatalf("produce: %v", err)
	}
	return resp.Topics[0].Partitions[0]
}

func (x *rawTxn) end(ctx context.Context, commit bool) {
	x.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = x.id, x.pid, x.epoch, commit
	resp, err := req.RequestWith(ctx, x.cl)
	if err != nil || resp.ErrorCode != 0 {
		x.t.Fatalf("EndTxn commit=%v: %v, code %d", commit, err, resp.ErrorCode)
	}
	if resp.ProducerEpoch >= 0 && resp.Version >= 5 { // transaction version 2 bumps the epoch
		x.pid, x.epoch = resp.ProducerID, resp.ProducerEpoch
	}
}

// lateDeadLetter sends, in a transaction of its own, a batch of row 1 and an invalid record to
// dlqd (on_invalid: dlq) while the tee's dead-letter produce is held back past the request's
// deadline, so the batch is answered with an error before its row can be held; then it lets
// the dead letter land (after abort, when given) and waits until the tee has dropped the late
// row. It fails the test if the row is held.
func lateDeadLetter(t *testing.T, abort bool) (*env, *rawTxn, []byte) {
	t.Helper()
	e := startEnv(t, []config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"}}, "dlqd", "bad")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	// Kafka 3.9's versions: transaction version 1, where an abort keeps the epoch.
	cl := e.client(t, kgo.MaxVersions(kversion.V3_9_0()))
	if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	// The tee's dead-letter produces wait until released. They are the Produce requests not
	// naming dlqd (the tee's own client may name topics by id, which the proxy never passes on).
	release := make(chan struct{})
	e.kafka.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		for _, tp := range r.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == "dlqd" {
				return nil, nil, false
			}
		}
		e.kafka.SleepControl(func() { <-release })
		return nil, nil, false
	})
	x := newRawTxn(t, ctx, cl, "late-app")
	x.addPartition(ctx, "dlqd")
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	batch := rawTxnBatch(x.pid, x.epoch, 0, seedRow(1), bad)
	if p := x.produce(ctx, "dlqd", batch); p.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("produce with its dead letter held back: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", p.ErrorCode)
	}
	if abort {
		x.end(ctx, false)
	}
	close(release)
	deadline := time.Now().Add(20 * time.Second)
	for e.metric(t, "okp_tee_rows_dead_lettered_total") < 1 || e.metricWith(t, "okp_tee_txn_rows_dropped_total", "reason", "late") < 1 {
		if held := e.metricWith(t, "okp_tee_txn_rows_held", "state", "open"); held > 0 {
			t.Fatalf("%v rows of a batch answered failed held after its dead letter landed", held)
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-lettered %v, dropped late %v", e.metric(t, "okp_tee_rows_dead_lettered_total"),
				e.metricWith(t, "okp_tee_txn_rows_dropped_total", "reason", "late"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e, x, batch
}

// tableIDs counts the rows of kafka_test.table by c3_int64.
func (e *env) tableIDs(t *testing.T, table string) map[int64]int {
	t.Helper()
	ids := map[int64]int{}
	for _, r := range e.tableRows(t, table) {
		ids[r[2].I]++
	}
	return ids
}

// A transactional Produce answered with an error at its deadline (its dead-letter produce was
// still out) must not hold its rows when that produce finishes later: the producer has heard
// the batch failed and may have aborted meanwhile, and rows held then were written by the next
// transaction's commit under the same epoch although Kafka aborted them.
func TestRowsOfAnAbortedBatchAnsweredBeforeTheyWereHeldAreNotHeldLater(t *testing.T) {
	e, x, _ := lateDeadLetter(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The same producer's next transaction commits; only its own row is written.
	x.addPartition(ctx, "dlqd")
	if p := x.produce(ctx, "dlqd", rawTxnBatch(x.pid, x.epoch, 2, seedRow(2))); p.ErrorCode != 0 {
		t.Fatalf("next transaction's produce: code %d", p.ErrorCode)
	}
	x.end(ctx, true)
	if ids := e.tableIDs(t, "dlqd"); len(ids) != 2 || ids[0] != 1 || ids[2] != 1 {
		t.Fatalf("table holds ids %v, want 0 and 2 once each (1 was aborted)", ids)
	}
}

// When the producer retries the batch instead, the retry holds the row and the commit writes it
// once.
func TestRetryOfABatchAnsweredBeforeItsRowsWereHeldHoldsThem(t *testing.T) {
	e, x, batch := lateDeadLetter(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if p := x.produce(ctx, "dlqd", batch); p.ErrorCode != 0 {
		t.Fatalf("retry: code %d", p.ErrorCode)
	}
	x.end(ctx, true)
	if ids := e.tableIDs(t, "dlqd"); len(ids) != 2 || ids[0] != 1 || ids[1] != 1 {
		t.Fatalf("table holds ids %v, want 0 and 1 once each", ids)
	}
	if got := len(e.topicRecords(t, "bad")); got != 1 {
		t.Fatalf("dead-letter topic holds %d records, want the invalid record once", got)
	}
}

// Rows of open transactions are bounded by limits.max_held_transaction_rows: past it, a further
// transactional batch is refused, retriably (NOT_ENOUGH_REPLICAS), before anything is appended;
// a retry of a batch already held passes, and room comes back as transactions end.
func TestHeldTransactionRowsAreBounded(t *testing.T) {
	ctx, e, cl := startHeldBound(t)
	big := newRawTxn(t, ctx, cl, "big-app")
	big.addPartition(ctx, "topic1")
	held := rawTxnBatch(big.pid, big.epoch, 0, seedRow(1), seedRow(2), seedRow(3))
	if p := big.produce(ctx, "topic1", held); p.ErrorCode != 0 {
		t.Fatalf("3 rows under a bound of 4: code %d", p.ErrorCode)
	}
	other := newRawTxn(t, ctx, cl, "other-app")
	other.addPartition(ctx, "topic1")
	refused := rawTxnBatch(other.pid, other.epoch, 0, seedRow(4), seedRow(5))
	p := other.produce(ctx, "topic1", refused)
	if p.ErrorCode != kerr.NotEnoughReplicas.Code || p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "limits.max_held_transaction_rows (4)") {
		t.Fatalf("2 more rows past the bound: code %d (%v), want NOT_ENOUGH_REPLICAS naming the limit", p.ErrorCode, p.ErrorMessage)
	}
	if p := big.produce(ctx, "topic1", held); p.ErrorCode != 0 {
		t.Fatalf("retry of a batch already held: code %d", p.ErrorCode)
	}
	big.end(ctx, true)
	if p := other.produce(ctx, "topic1", refused); p.ErrorCode != 0 {
		t.Fatalf("after the first transaction committed: code %d", p.ErrorCode)
	}
	other.end(ctx, true)
	if ids := e.tableIDs(t, "topic1"); len(ids) != 6 {
		t.Fatalf("table holds ids %v, want 0..5 once each", ids)
	}
	// Rows 0..5 and two transaction markers: the refused attempt appended nothing.
	if got := e.endOffsets(t, "topic1"); got != 8 {
		t.Fatalf("topic's end offsets sum to %d, want 8", got)
	}
}

// A write that outlives its request's timeout (answered with an error, the write going on for
// the ledger's sake) keeps its bytes counted against limits.max_queued_bytes until it ends:
// before, a client choosing a short timeout_ms had such writes pile up beyond the bound.
func TestWritesOutlivingTheirRequestStayCounted(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := e.client(t)
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	e.cluster.StallPuts(time.Minute)
	defer e.cluster.StallPuts(0)
	batch := seedBatch(1, 200)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 100
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "topic1", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("produce against a stalled tablet: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", code)
	}
	if q := e.proxy.QueuedBytes(); q < int64(len(batch)) {
		t.Fatalf("queued bytes %d after the answer while its write goes on, want at least the batch's %d", q, len(batch))
	}
	e.cluster.StallPuts(0)
	for deadline := time.Now().Add(20 * time.Second); e.proxy.QueuedBytes() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("queued bytes %d after the write ended, want 0", e.proxy.QueuedBytes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ids := e.tableIDs(t, "topic1"); len(ids) != 201 {
		t.Fatalf("table holds %d ids, want 201", len(ids))
	}
}

// The same for a partition whose store first waited (here for its dead-letter produce): its
// write outlives the answer too, and its bytes stay counted until it ends.
func TestWritesOfWaitingPartitionsStayCounted(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"}}, "dlqd", "bad")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := e.client(t)
	if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	e.cluster.StallPuts(time.Minute)
	defer e.cluster.StallPuts(0)
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	values := []string{bad}
	for i := 1; i <= 200; i++ {
		values = append(values, seedRow(i))
	}
	batch := rawBatch(values...)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 1000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "dlqd", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("produce against a stalled tablet: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", code)
	}
	time.Sleep(300 * time.Millisecond) // the goroutine's own end has come by now
	if q := e.proxy.QueuedBytes(); q < int64(len(batch)) {
		t.Fatalf("queued bytes %d after the answer while the partition's write goes on (Puts stalled), want at least the batch's %d", q, len(batch))
	}
}

// The held-rows bound counts the batches of one request against each other: they are planned
// before any of them is held.
func TestHeldRowsBoundCountsBatchesOfTheSameRequest(t *testing.T) {
	ctx, _, cl := startHeldBound(t)
	x := newRawTxn(t, ctx, cl, "app")
	x.addPartition(ctx, "topic1", 0, 1)
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = &x.id, -1, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "topic1", Partitions: []kmsg.ProduceRequestTopicPartition{
		{Partition: 0, Records: rawTxnBatch(x.pid, x.epoch, 0, seedRow(1), seedRow(2), seedRow(3))},
		{Partition: 1, Records: rawTxnBatch(x.pid, x.epoch, 0, seedRow(4), seedRow(5), seedRow(6))},
	}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode == 0 {
			accepted += 3
		}
	}
	if accepted > 4 {
		t.Fatalf("%d rows of one open transaction held under limits.max_held_transaction_rows = 4: batches planned together are not counted against each other", accepted)
	}
}

// startHeldBound starts the tee with limits.max_held_transaction_rows 4 and a sink for topic1,
// whose table it creates, and returns a client limited to Kafka 3.9's protocol.
func startHeldBound(t *testing.T) (context.Context, *env, *kgo.Client) {
	t.Helper()
	e := startEnvWith(t, func(o *tee.Options) { o.MaxHeldTransactionRows = 4 },
		[]config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cl := e.client(t, kgo.MaxVersions(kversion.V3_9_0()))
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	return ctx, e, cl
}
