package tee_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

func produceRequest(topic string, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	return req
}

func seedBatch(first, n int) []byte {
	values := make([]string, n)
	for i := range values {
		values[i] = seedRow(first + i)
	}
	return rawBatch(values...)
}

// The tee plans a Produce on the event loop only when that cannot wait or take long; what it
// takes there it plans exactly as Begin would (rows written by the Step, invalid records
// answered locally).
func TestBeginOnLoopTakesOnlyCheapProduces(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1", "other")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info := proxy.ConnInfo{RemoteAddr: "127.0.0.1:1", NodeID: 0}

	if _, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", seedBatch(1, 1))); ok {
		t.Fatal("taken on the loop although the table must be created first")
	}
	// Had the table gone missing after that check, planning on the loop answers a retriable
	// error instead of creating it there.
	step := tee.PlanOnLoopUnchecked(e.tee, ctx, info, produceRequest("topic1", seedBatch(1, 1)))
	local, _ := step.Local.(*kmsg.ProduceResponse)
	if local == nil || local.Topics[0].Partitions[0].ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("missing table planned on the loop: step %+v", step)
	}
	if _, err := e.store.Table("kafka_test", "topic1"); err == nil {
		t.Fatal("the table was created on the loop")
	}
	// Through the proxy: Begin on a worker creates the table.
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(1))}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	step, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", seedBatch(2, 3)))
	if !ok || step.FinishAsync == nil || step.Local != nil || step.Forward != nil {
		t.Fatalf("small uncompressed produce: ok %v, step %+v", ok, step)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	resp.Topics = []kmsg.ProduceResponseTopic{{Topic: "topic1", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0}}}}
	answered := make(chan kmsg.Response, 1)
	step.FinishAsync(ctx, resp, func(r kmsg.Response) { answered <- r })
	select {
	case r := <-answered:
		if code := r.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("finish answered error %d", code)
		}
	case <-ctx.Done():
		t.Fatal("finish never answered")
	}
	if rows := e.tableRows(t, "topic1"); len(rows) != 4 {
		t.Fatalf("table has %d rows, want 4", len(rows))
	}

	// The bounds: 32 KiB of records, and 64 records.
	big := 1
	for len(seedBatch(10, big)) <= 32<<10 {
		big++
	}
	if _, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", seedBatch(10, big))); ok {
		t.Fatalf("%d records (%d bytes) taken on the loop", big, len(seedBatch(10, big)))
	}
	if _, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", seedBatch(10, big-1))); !ok {
		t.Fatalf("%d records (%d bytes) declined", big-1, len(seedBatch(10, big-1)))
	}
	tiny := func(n int) []byte { return rawBatch(slices.Repeat([]string{"{}"}, n)...) }
	if _, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", tiny(65))); ok {
		t.Fatal("65 records taken on the loop")
	}
	if step, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", tiny(64))); !ok || step.Local == nil {
		t.Fatalf("64 invalid records: ok %v, step %+v (want a local INVALID_RECORD answer)", ok, step)
	}
	compressed := seedBatch(10, 1)
	compressed[22] |= 4 // zstd in the attributes: the header alone must send it off the loop
	if _, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", compressed)); ok {
		t.Fatal("compressed batch taken on the loop")
	}

	bad := strings.Replace(seedRow(50), `"c2_int32":2`, `"c2_int32":"two"`, 1)
	step, ok = e.tee.BeginOnLoop(ctx, info, produceRequest("topic1", rawBatch(bad)))
	local, _ = step.Local.(*kmsg.ProduceResponse)
	if !ok || local == nil || local.Topics[0].Partitions[0].ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("invalid record: ok %v, step %+v", ok, step)
	}

	if step, ok := e.tee.BeginOnLoop(ctx, info, produceRequest("other", rawBatch("not json"))); !ok || step.Local != nil || step.FinishAsync != nil {
		t.Fatalf("produce to a topic without a sink: ok %v, step %+v", ok, step)
	}
	if _, ok := e.tee.BeginOnLoop(ctx, info, kmsg.NewPtrEndTxnRequest()); ok {
		t.Fatal("EndTxn taken on the loop")
	}
}
