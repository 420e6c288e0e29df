package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// A drain waits until clients have taken the answers it counts as given, not only until they
// are in the proxy's send buffers: the close that follows writes those once, as far as the
// socket takes them, so a client reading slower than it was answered lost answers (here 8
// pipelined Fetches of 4 MiB each, read only once the drain has begun).
func TestDrainWaitsUntilClientsHaveTakenTheirAnswers(t *testing.T) {
	drainWhileClientReads(t, false)
}

// The same for a TLS client, whose answers the proxy's TLS bridge still holds after they left
// the send buffer.
func TestDrainWaitsUntilTLSClientsHaveTakenTheirAnswers(t *testing.T) {
	drainWhileClientReads(t, true)
}

func drainWhileClientReads(t *testing.T, useTLS bool) {
	ctx := testCtx(t, time.Minute)
	const fetches = 8
	p, r := bigFetchesPending(t, ctx, 8, 512<<10, fetches, useTLS)
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
		select {
		case rerr := <-got:
			t.Fatalf("drain: %v (the client's reading: %v)", err, rerr)
		default:
			t.Fatalf("drain: %v", err)
		}
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
	p, _ := bigFetchesPending(t, ctx, 1, 900<<10, 16, false)
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
func bigFetchesPending(t *testing.T, ctx context.Context, records, size, fetches int, useTLS bool) (*Proxy, *rawConn) {
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
	var o Options
	k := testpki.New(t)
	if useTLS {
		o.TLS = &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile}
	}
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, o)
	tcp, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	// Small, so that the answers queue in the proxy; not smaller, as TLS records of 16 KiB then
	// crawl through a window that cannot take one.
	_ = tcp.(*net.TCPConn).SetReadBuffer(256 << 10)
	_ = tcp.SetDeadline(time.Now().Add(50 * time.Second))
	nc := tcp
	if useTLS {
		nc = tls.Client(tcp, &tls.Config{RootCAs: k.Pool, ServerName: "127.0.0.1"})
	}
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

// A bridge counts what it has handed to the TLS connection, which is what a drain waits for:
// bytes in the socket pair or in the bridge's copy buffer are not delivered yet.
func TestBridgeCountsWhatItDelivered(t *testing.T) {
	client, server := net.Pipe() // synchronous: a write waits for its reader
	inner, st, err := bridge(server)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	out := make([]byte, 100<<10)
	if _, err := inner.Write(out); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if d := st.delivered.Load(); d >= int64(len(out)) {
		t.Fatalf("delivered %d of %d bytes before the client read any", d, len(out))
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, make([]byte, len(out))); err != nil {
		t.Fatal(err)
	}
	// The count follows the write's return, just after the reader has the bytes.
	for deadline := time.Now().Add(5 * time.Second); st.delivered.Load() != int64(len(out)); {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d bytes after the client read %d", st.delivered.Load(), len(out))
		}
		time.Sleep(time.Millisecond)
	}
	if st.ended.Load() {
		t.Fatal("bridge ended while both ends are open")
	}
	client.Close()
	for !st.ended.Load() {
		time.Sleep(time.Millisecond)
	}
}

// A drain after (or while) Close returns at once: the closed proxy has no connection left to take
// an answer, and its loops no longer run the count.
func TestDrainAfterCloseReturnsAtOnce(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{})
	r := dialRaw(t, p.Addr()) // so that its loop is known
	if err := apiVersionsRoundTrip(r.c, 1); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Drain(dctx); err != nil || time.Since(start) > time.Second {
		t.Fatalf("drain after close took %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}
