package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// dialLog records every address a client dials.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *dialLog) learned() map[int32][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return map[int32][]string{-1: append([]string(nil), d.addrs...)}
}

// TestSarama produces with sarama's sync producer (acks=WaitForAll) through the proxy and reads
// every partition back to its high watermark with sarama's partition consumer.
func TestSarama(t *testing.T) {
	t.Parallel()
	const topic = "sarama"
	e := newEnv(t, topic)
	cfg := sarama.NewConfig()
	cfg.ClientID = "okp-e2e-sarama"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewRoundRobinPartitioner
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Timeout = 10 * time.Second
	client, err := sarama.NewClient([]string{e.bootstrap}, cfg)
	if err != nil {
		t.Fatalf("sarama client: %v", err)
	}
	defer client.Close()
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	want := harness.Lines("sarama", 300)
	msgs := make([]*sarama.ProducerMessage, len(want))
	for i, v := range want {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}
	}
	if err := prod.SendMessages(msgs); err != nil {
		t.Fatalf("sarama send: %v", err)
	}
	if err := prod.Close(); err != nil {
		t.Fatalf("sarama producer close: %v", err)
	}

	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer cons.Close()
	// Partitions are read concurrently: each partition consumer waits up to MaxWaitTime per fetch.
	type result struct {
		vals []string
		err  error
	}
	results := make(chan result, numPartitions)
	cctx := testContext(t, 30*time.Second)
	for p := int32(0); p < numPartitions; p++ {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("sarama high watermark of partition %d: %v", p, err)
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("sarama consume partition %d: %v", p, err)
		}
		go func() {
			defer pc.AsyncClose()
			var r result
			for int64(len(r.vals)) < hwm {
				select {
				case m := <-pc.Messages():
					r.vals = append(r.vals, string(m.Value))
				case cerr := <-pc.Errors():
					r.err = fmt.Errorf("partition %d: %w", p, cerr)
					results <- r
					return
				case <-cctx.Done():
					r.err = fmt.Errorf("partition %d: %w after %d of %d records", p, cctx.Err(), len(r.vals), hwm)
					results <- r
					return
				}
			}
			results <- r
		}()
	}
	var got []string
	for range numPartitions {
		r := <-results
		if r.err != nil {
			t.Fatalf("sarama consume: %v", r.err)
		}
		got = append(got, r.vals...)
	}
	checkSame(t, "sarama", want, got)

	nodes := map[int32]string{}
	for _, b := range client.Brokers() {
		nodes[b.ID()] = b.Addr()
	}
	e.checkNodes(t, "sarama", nodes)
}

// TestKafkaGoAcksZero writes with kafka-go's default writer, whose zero RequiredAcks means acks=0
// (Produce requests with no response), then reads everything back with a kafka-go group reader.
func TestKafkaGoAcksZero(t *testing.T) {
	t.Parallel()
	const topic = "kafkago"
	e := newEnv(t, topic)
	dials := &dialLog{}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(e.bootstrap),
		Topic:        topic,
		Balancer:     &kafkago.RoundRobin{},
		BatchTimeout: 5 * time.Millisecond,
		Transport:    &kafkago.Transport{Dial: dials.dial, ClientID: "okp-e2e-kafkago"},
	}
	if w.RequiredAcks != kafkago.RequireNone {
		t.Fatalf("kafka-go writer default RequiredAcks is %v, the test expects RequireNone (acks=0)", w.RequiredAcks)
	}
	want := harness.Lines("kafkago", 300)
	msgs := make([]kafkago.Message, len(want))
	for i, v := range want {
		msgs[i] = kafkago.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(v)}
	}
	ctx := testContext(t, 60*time.Second)
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("kafka-go writer close: %v", err)
	}

	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:     []string{e.bootstrap},
		GroupID:     "okp-e2e-kafkago",
		Topic:       topic,
		StartOffset: kafkago.FirstOffset,
		MaxWait:     100 * time.Millisecond,
		Dialer:      &kafkago.Dialer{Timeout: 5 * time.Second, DialFunc: dials.dial, ClientID: "okp-e2e-kafkago-reader"},
	})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	var got []string
	for len(got) < len(want) {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("kafka-go read after %d of %d records: %v", len(got), len(want), err)
		}
		got = append(got, string(m.Value))
	}
	checkSame(t, "kafka-go", want, got)

	mc := &kafkago.Client{Addr: kafkago.TCP(e.bootstrap), Timeout: 10 * time.Second, Transport: &kafkago.Transport{Dial: dials.dial}}
	md, err := mc.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		t.Fatalf("kafka-go metadata: %v", err)
	}
	nodes := map[int32]string{}
	for _, b := range md.Brokers {
		nodes[int32(b.ID)] = net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
	}
	e.checkNodes(t, "kafka-go metadata", nodes)
	e.checkLearned(t, "kafka-go dials", dials.learned())
}
