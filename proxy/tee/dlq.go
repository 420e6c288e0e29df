package tee

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers, named like Kafka Connect's (errors.deadletterqueue.context.headers.enable)
// so existing DLQ tooling reads them.
const (
	headerTopic     = "__connect.errors.topic"
	headerPartition = "__connect.errors.partition"
	headerOffset    = "__connect.errors.offset"
	headerMessage   = "__connect.errors.exception.message"
	headerTable     = "__openmldb.errors.table"
)

// deadLetter produces the partition's invalid records to the sink's DLQ topic, with their
// original key and value and headers naming where they came from and why they were refused, but
// not those in done (by index in the partition: an earlier attempt's). It returns the indexes of
// the records it got there, also when others failed: a retry must produce only the rest, or the
// dead-letter topic would list some twice. baseOffset is the broker-assigned offset of the
// partition's first record (-1 for acks=0).
func (t *Tee) deadLetter(ctx context.Context, p *partitionPlan, baseOffset int64, done []int) ([]int, error) {
	cl := t.dlq.Load()
	if cl == nil {
		return nil, nil
	}
	recs := make([]*kgo.Record, 0, len(p.invalid))
	index := make(map[*kgo.Record]int, len(p.invalid))
	skip := make(map[int]bool, len(done))
	for _, i := range done {
		skip[i] = true
	}
	for _, bad := range p.invalid {
		if skip[bad.index] {
			continue
		}
		offset := int64(-1)
		if baseOffset >= 0 {
			offset = baseOffset + int64(bad.index)
		}
		// bad.key and bad.value are copies (planPartition), never the request's pooled buffer:
		// kgo may still hold a record whose ProduceSync gave up at the deadline.
		r := &kgo.Record{
			Topic: p.sink.DLQTopic,
			Key:   bad.key,
			Value: bad.value,
			Headers: []kgo.RecordHeader{
				{Key: headerTopic, Value: []byte(p.topic)},
				{Key: headerPartition, Value: []byte(strconv.Itoa(int(p.partition)))},
				{Key: headerOffset, Value: []byte(strconv.FormatInt(offset, 10))},
				{Key: headerMessage, Value: []byte(bad.err.Error())},
				{Key: headerTable, Value: []byte(p.tableName())},
			},
		}
		recs = append(recs, r)
		index[r] = bad.index
	}
	// kgo never gives up on a record it has sent (it waits for the broker's answer, so an
	// idempotent producer stays exact); those that fail here were not written.
	var produced []int
	var firstErr error
	for _, res := range cl.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			if firstErr == nil {
				firstErr = res.Err
			}
			continue
		}
		produced = append(produced, index[res.Record])
	}
	t.metrics.rowsDeadLettered.WithLabelValues(p.tableName()).Add(float64(len(produced)))
	return produced, firstErr
}
