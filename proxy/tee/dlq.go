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

// deadLetter produces every invalid record of the partition to the sink's DLQ topic, with its
// original key and value and headers naming where it came from and why it was refused.
// baseOffset is the broker-assigned offset of the partition's first record (-1 for acks=0).
func (t *Tee) deadLetter(ctx context.Context, p *partitionPlan, baseOffset int64) error {
	cl := t.dlq.Load()
	if cl == nil {
		return nil
	}
	recs := make([]*kgo.Record, 0, len(p.invalid))
	for _, bad := range p.invalid {
		offset := int64(-1)
		if baseOffset >= 0 {
			offset = baseOffset + int64(bad.index)
		}
		// bad.key and bad.value are copies (planPartition), never the request's pooled buffer:
		// kgo may still hold a record whose ProduceSync gave up at the deadline.
		recs = append(recs, &kgo.Record{
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
		})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	t.metrics.rowsDeadLettered.WithLabelValues(p.tableName()).Add(float64(len(recs)))
	return nil
}
