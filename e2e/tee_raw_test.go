package e2e

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// encodeBatch builds one uncompressed, non-idempotent v2 record batch of values (null keys), as a
// producer would send it, so a test can read the Produce response's error_message and
// record_errors, which the client libraries do not expose.
func encodeBatch(values ...string) []byte {
	var recs []byte
	for i, v := range values {
		var body []byte
		body = append(body, 0)                          // attributes
		body = binary.AppendVarint(body, 0)             // timestamp delta
		body = binary.AppendVarint(body, int64(i))      // offset delta
		body = binary.AppendVarint(body, -1)            // null key
		body = binary.AppendVarint(body, int64(len(v))) // value length
		body = append(body, v...)
		body = binary.AppendUvarint(body, 0) // no headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(values)), Records: recs,
	}
	out := b.AppendTo(nil)
	// Length counts from after the length field; the CRC covers attributes onwards.
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// produceRawBatch sends one Produce (acks=all, the version kgo negotiates through the proxy, at
// most v12) with batch for topic/partition straight to the partition leader's proxy listener and
// returns that partition's response.
func (e *teeEnv) produceRawBatch(t *testing.T, cl *kgo.Client, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	leader := e.kafka.LeaderFor(topic, partition)
	resp, err := cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		t.Fatalf("raw produce to %s/%d via node %d: %v", topic, partition, leader, err)
	}
	pr := resp.(*kmsg.ProduceResponse)
	if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
		t.Fatalf("raw produce to %s/%d: response has %d topics", topic, partition, len(pr.Topics))
	}
	if pr.Version < 8 {
		t.Fatalf("raw produce negotiated v%d; record_errors need v8+", pr.Version)
	}
	return pr.Topics[0].Partitions[0]
}
