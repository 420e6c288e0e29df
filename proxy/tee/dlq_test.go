package tee_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// An idempotent producer's retry of a batch does not dead-letter its invalid records again (the
// ledger remembers them), also when every record of the batch is invalid, so that no table was
// resolved for it.
func TestIdempotentRetryDoesNotDeadLetterAgain(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"}}, "dlqd", "bad")
	cl := e.client(t)
	if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	for _, c := range []struct {
		name   string
		pid    int64
		values []string
	}{{"with a valid row", 4000, []string{seedRow(1), bad}}, {"all invalid", 4001, []string{bad}}} {
		before := len(e.topicRecords(t, "bad"))
		batch := rawProducerBatch(c.pid, 0, 0, c.values...)
		for range 2 { // the second is the producer's retry (the broker deduplicates it)
			if p := produceRaw(t, cl, "dlqd", 0, batch); p.ErrorCode != 0 {
				t.Fatalf("%s: code %d", c.name, p.ErrorCode)
			}
		}
		if got := len(e.topicRecords(t, "bad")) - before; got != 1 {
			t.Errorf("batch %s: its invalid record dead-lettered %d times by the batch and its idempotent retry, want once", c.name, got)
		}
	}
}

// A batch some of whose dead letters reached the DLQ topic while others failed is retried with
// only the others: the dead-letter topic lists each invalid record once. Here the DLQ broker
// stores the first partition of the tee's first dead-letter produce and leaves the rest
// unanswered; kgo sends those again, and they are refused with a non-retriable code. Before,
// the attempt counted as failed as a whole, and the retry produced the stored record again.
func TestRetryDeadLettersOnlyTheRecordsNotYetProduced(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"}}, "dlqd", "bad")
	cl := e.client(t)
	if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	var (
		mu       sync.Mutex
		failing  = true
		requests int
	)
	// The tee's dead-letter produces are the Produce requests not naming dlqd.
	e.kafka.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		req := r.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		if !failing || slices.ContainsFunc(req.Topics, func(tp kmsg.ProduceRequestTopic) bool { return tp.Topic == "dlqd" }) {
			return nil, nil, false
		}
		requests++
		if requests == 1 { // kfake stores the first partition only
			req.Topics = req.Topics[:1]
			req.Topics[0].Partitions = req.Topics[0].Partitions[:1]
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = req.Version
		for _, tp := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, pp := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = pp.Partition, kerr.InvalidRecord.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	bad1 := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	bad2 := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":80000`, 1)
	batch := rawProducerBatch(4100, 0, 0, seedRow(1), bad1, bad2)
	send := func(timeout int32) kmsg.ProduceResponseTopicPartition {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, timeout
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "dlqd", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	if p := send(15000); p.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code { // kgo re-sends after a metadata refresh (~5 s)
		t.Fatalf("produce with a dead letter refused: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", p.ErrorCode)
	} else if p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "1 of 2 invalid records not produced") {
		t.Errorf("produce with a dead letter refused: message %q, want it to count the records not produced", *p.ErrorMessage)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := send(5000) // the retry; it may find the first attempt still finishing
		if p.ErrorCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry: code %d %v", p.ErrorCode, p.ErrorMessage)
		}
		time.Sleep(100 * time.Millisecond)
	}
	counts := map[string]int{}
	for _, v := range e.topicRecords(t, "bad") {
		counts[v]++
	}
	if counts[bad1] != 1 || counts[bad2] != 1 || len(counts) != 2 {
		t.Errorf("dead-letter topic: %d and %d copies of the two invalid records, %d distinct records; want one each",
			counts[bad1], counts[bad2], len(counts))
	}
	if ids := e.tableIDs(t, "dlqd"); ids[1] != 1 {
		t.Errorf("table holds the valid row %d times, want once", ids[1])
	}
}

// A dlq_topic that does not exist is created where the broker allows it, as Kafka Connect
// creates its dead-letter topic (before, the dead-letter producer did not ask, every batch with
// an invalid record was answered with a retriable error and appended again on each retry).
// Where the broker does not allow it, the failure is logged with the topic, since few clients
// show the error message they get.
func TestDeadLetterTopicIsCreatedOrTheFailureLogged(t *testing.T) {
	sinks := func(dlq string) []config.Sink {
		return []config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: dlq}}
	}
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	t.Run("auto-created", func(t *testing.T) {
		e := startEnvKafka(t, openmldbtest.Options{}, []kfake.Opt{kfake.AllowAutoTopicCreation()}, nil, sinks("new-dlq"), "dlqd")
		cl := e.client(t)
		if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(1), bad)); p.ErrorCode != 0 {
			t.Fatalf("code %d (%v), want 0", p.ErrorCode, p.ErrorMessage)
		}
		if got := e.topicRecords(t, "new-dlq"); len(got) != 1 || got[0] != bad {
			t.Fatalf("dead-letter topic holds %d records, want the invalid one", len(got))
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		var logs lockedBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		e := startEnvWith(t, func(o *tee.Options) { o.Logger = logger }, sinks("missing-dlq"), "dlqd")
		cl := e.client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 1000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "dlqd", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: rawBatch(seedRow(1), bad)}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotEnoughReplicasAfterAppend.Code {
			t.Fatalf("code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", code)
		}
		for !strings.Contains(logs.String(), "dead-letter produce failed") {
			if ctx.Err() != nil {
				t.Fatalf("no log line names the failed dead-letter produce:\n%s", logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if line := logs.String(); !strings.Contains(line, "dlq_topic=missing-dlq") || !strings.Contains(line, "topic=dlqd") {
			t.Errorf("the log line does not name the topics:\n%s", line)
		}
	})
}

// Different mistakes within a second are each logged with their reason: for a client on
// Produce v7 (kcat), which cannot show error_message, the log is the only place the reason
// appears. Before, one line a second per table and code went out, and the other reasons only
// as a count.
func TestRejectedBatchesWithDifferentReasonsAreEachLogged(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := startEnvWith(t, func(o *tee.Options) { o.Logger = logger }, []config.Sink{{Topics: []string{"rj"}, AutoCreate: true}}, "rj")
	cl := e.client(t)
	if p := produceRaw(t, cl, "rj", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	reasons := map[string]string{
		`"c2_int32":2`:      `"c2_int32":2.5`,
		`"c1_int16":1`:      `"c1_int16":70000`,
		`"c6_boolean":true`: `"c6_boolean":"yes"`,
	}
	for from, to := range reasons {
		if p := produceRaw(t, cl, "rj", 0, rawBatch(strings.Replace(seedMessage, from, to, 1))); p.ErrorCode != kerr.InvalidRecord.Code {
			t.Fatalf("%s: code %d, want INVALID_RECORD", to, p.ErrorCode)
		}
	}
	if n := strings.Count(logs.String(), "rejected produce partition"); n != len(reasons) {
		t.Fatalf("%d lines for %d rejected batches with different reasons:\n%s", n, len(reasons), logs.String())
	}
	for _, field := range []string{"c2_int32", "c1_int16", "c6_boolean"} {
		if !strings.Contains(logs.String(), field) {
			t.Errorf("no line names field %s:\n%s", field, logs.String())
		}
	}
}

// A tombstone (null value) is skipped and counted, under the table's full name like every other
// tee series; the records around it are stored, and the broker gets the batch as sent.
func TestTombstonesAreSkippedAndCounted(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"tomb"}, AutoCreate: true}}, "tomb")
	cl := e.client(t)
	if p := produceRaw(t, cl, "tomb", 0, rawBatch(seedRow(1), tombstone, seedRow(2))); p.ErrorCode != 0 {
		t.Fatalf("code %d (%v)", p.ErrorCode, p.ErrorMessage)
	}
	if ids := e.tableIDs(t, "tomb"); len(ids) != 2 || ids[1] != 1 || ids[2] != 1 {
		t.Errorf("table rows by id %v, want 1 and 2 once", ids)
	}
	if n := e.endOffsets(t, "tomb"); n != 3 {
		t.Errorf("topic holds %d records, want 3 (the tombstone too)", n)
	}
	if got := e.metricWith(t, "okp_tee_tombstones_skipped_total", "table", "kafka_test.tomb"); got != 1 {
		t.Errorf("okp_tee_tombstones_skipped_total{table=\"kafka_test.tomb\"} = %v, want 1", got)
	}
}
