package proxy

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A drain waits until clients have taken the answers it counts as given, not only until they
// are in the proxy's send buffers: the close that follows writes those once, as far as the
// socket takes them, so a client reading slower than it was answered lost answers (here 8
// pipelined Fetches of 4 MiB each, read only once the drain has begun).
func TestDrainWaitsUntilClientsHaveTakenTheirAnswers(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	const fetches = 8
	p, r := bigFetchesPending(t, ctx, 8, 512<<10, fetches)
	for p.InflightRequests() > 0 { // every Fetch answered into the proxy's send buffer
		if ctx.Err() != nil {
			t.Fatal("the fetches were never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}

	got := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // the drain has begun
		for i := range fetches {
			f, err := r.read()
			if err != nil {
				got <- err
				return
			}
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = 4
			if err := resp.ReadFrom(f[8:]); err != nil {
				got <- err
				return
			}
			if n := len(resp.Topics[0].Partitions[0].RecordBatches); n < 4<<20 {
				got <- fmt.Errorf("fetch %d carried %d bytes of records", i, n)
				return
			}
		}
		got <- nil
	}()
	drainCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Drain(drainCtx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	closeCtx, cancelClose := context.WithTimeout(ctx, 10*time.Second)
	defer cancelClose()
	if err := p.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("reading the answers the drain counted as given: %v", err)
	}
}

// A client that does not read its answers holds the drain until its context ends, which then
// says how much is left.
func TestDrainReportsAnswersNotTaken(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	p, _ := bigFetchesPending(t, ctx, 1, 900<<10, 16)
	drainCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := p.Drain(drainCtx)
	if err == nil || !strings.Contains(err.Error(), "not yet taken by 1 client") {
		t.Fatalf("drain with a client not reading: %v", err)
	}
}

// bigFetchesPending stores records values of size bytes in topic "big" of a one-broker kfake,
// starts a proxy in front of it, and sends it fetches pipelined Fetches of the whole partition
// from a client with a small receive buffer, so that the answers queue in the proxy. It returns
// once every Fetch is answered into the proxy's send buffer.
func bigFetchesPending(t *testing.T, ctx context.Context, records, size, fetches int) (*Proxy, *rawConn) {
	t.Helper()
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "big"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000000"}))
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchMaxBytes(1<<20), kgo.DefaultProduceTopic("big"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for range records {
		value := make([]byte, size)
		_, _ = rand.Read(value) // so that it does not compress
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{})
	nc, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	_ = nc.SetDeadline(time.Now().Add(50 * time.Second))
	var frames [][]byte
	for i := range fetches {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 4, -1, 0, 1, 8<<20
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "big", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 0, PartitionMaxBytes: 8 << 20}}}}
		frames = append(frames, reqFrame(req, int32(i)))
	}
	r := &rawConn{t: t, c: nc}
	r.send(frames...)
	fetch := p.metrics.counts(kmsg.Fetch.Int16(), 4)
	for fetch.requests.Load() < uint64(fetches) || p.InflightRequests() > 0 { // read by the proxy and answered
		if ctx.Err() != nil {
			t.Fatal("the fetches were never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p, r
}
