package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// waitFor polls cond until it holds or the test's bound passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// apiVersionsRoundTrip sends an ApiVersions v0 on c and reads its answer.
func apiVersionsRoundTrip(c net.Conn, corr int32) error {
	req := kmsg.NewPtrApiVersionsRequest()
	if _, err := c.Write(reqFrame(req, corr)); err != nil {
		return err
	}
	f, err := (&rawConn{c: c}).read()
	if err != nil {
		return err
	}
	if got := int32(binary.BigEndian.Uint32(f[4:])); got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	return nil
}

// Beyond limits.max_connections new connections are closed at once; the admitted ones keep
// working, and a slot frees when one of them closes.
func TestMaxConnections(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Limits: Limits{MaxConnections: 2}})
	var admitted []net.Conn
	for i := range 2 {
		conn := dialRaw(t, p.Addr()).c
		if err := apiVersionsRoundTrip(conn, int32(i)); err != nil {
			t.Fatalf("connection %d within the limit: %v", i, err)
		}
		admitted = append(admitted, conn)
	}
	extra := dialRaw(t, p.Addr()).c
	_ = extra.SetDeadline(time.Now().Add(10 * time.Second))
	if err := apiVersionsRoundTrip(extra, 9); err == nil || !(errors.Is(err, io.EOF) || isReset(err)) {
		t.Fatalf("third connection: got %v, want it closed", err)
	}
	for i, conn := range admitted {
		if err := apiVersionsRoundTrip(conn, int32(10+i)); err != nil {
			t.Fatalf("admitted connection %d after the refusal: %v", i, err)
		}
	}
	if n := p.ClientConns(); n != 2 {
		t.Fatalf("ClientConns = %d, want 2", n)
	}
	admitted[0].Close()
	waitFor(t, "the closed connection to be uncounted", 10*time.Second, func() bool { return p.ClientConns() == 1 })
	again := dialRaw(t, p.Addr()).c
	if err := apiVersionsRoundTrip(again, 20); err != nil {
		t.Fatalf("connection after one closed: %v", err)
	}
}

// stallProduce makes kfake hold every Produce until the returned release is called.
func stallProduce(c *kfake.Cluster) (release func()) {
	gate := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		<-gate
		return nil, nil, false
	})
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// pipeline writes n Produce requests (acks=1) of one value of valueSize bytes each on one
// connection without waiting, and reads every response. It returns the values produced and an
// error if any response is missing, out of order, duplicated or not NONE.
type pipeline struct {
	conn    net.Conn
	n       int
	written atomic.Int64 // requests fully written
	values  []string
	done    chan error
}

func startPipeline(t *testing.T, addr, topic, tag string, n, valueSize int) *pipeline {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(90 * time.Second))
	pl := &pipeline{conn: conn, n: n, done: make(chan error, 1)}
	frames := make([][]byte, n)
	for i := range n {
		v := fmt.Sprintf("%s-%06d-", tag, i)
		v += strings.Repeat("x", valueSize-len(v))
		pl.values = append(pl.values, v)
		frames[i] = reqFrame(produceReq(topic, 0, 1, v), int32(i))
	}
	go func() {
		for _, f := range frames {
			if _, err := conn.Write(f); err != nil {
				return // the reader reports the failure
			}
			pl.written.Add(1)
		}
	}()
	go func() {
		rc := &rawConn{c: conn}
		for i := range n {
			f, err := rc.read()
			if err != nil {
				pl.done <- fmt.Errorf("%s: response %d of %d: %w", tag, i, n, err)
				return
			}
			if corr := int32(binary.BigEndian.Uint32(f[4:])); corr != int32(i) {
				pl.done <- fmt.Errorf("%s: response %d has correlation id %d", tag, i, corr)
				return
			}
			resp := kmsg.NewPtrProduceResponse()
			resp.Version = 7
			if err := resp.ReadFrom(f[8:]); err != nil {
				pl.done <- fmt.Errorf("%s: response %d: %w", tag, i, err)
				return
			}
			if ec := resp.Topics[0].Partitions[0].ErrorCode; ec != 0 {
				pl.done <- fmt.Errorf("%s: response %d: error code %d", tag, i, ec)
				return
			}
		}
		pl.done <- nil
	}()
	return pl
}

// wait waits for every response of the pipeline and fails the test on a wrong or missing one.
func (pl *pipeline) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-pl.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("responses did not all arrive after the stall ended")
	}
}

// consumeValues reads n records of topic and checks that each of want appears exactly once.
func consumeValues(t *testing.T, addr, topic string, want []string) {
	t.Helper()
	recs := consumeAll(t, testCtx(t, 60*time.Second), addr, topic, len(want))
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	for _, v := range want {
		if seen[v] != 1 {
			t.Fatalf("record %.20q… stored %d times, want once", v, seen[v])
		}
	}
	if len(recs) != len(want) {
		t.Fatalf("consumed %d records, want %d", len(recs), len(want))
	}
}

// A client pipelining against a stalled broker: at limits.max_inflight_per_connection the proxy
// stops reading it (the client's writes block instead of piling up in the proxy), and when the
// broker answers again reading resumes and every request is answered exactly once, in order.
func TestInflightLimitStopsReading(t *testing.T) {
	const (
		maxInflight = 4
		n           = 400
		valueSize   = 64 << 10 // 25 MiB in all: far more than the socket buffers hold
	)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "inflight"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Limits: Limits{MaxInflightPerConnection: maxInflight}})
	release := stallProduce(c)
	defer release()
	pl := startPipeline(t, p.Addr(), "inflight", "if", n, valueSize)

	waitFor(t, "the proxy to pause reading", 30*time.Second, func() bool { return p.ReadPauses() > 0 })
	// The writer stalls once the socket buffers are full; give it time to fill them.
	var last int64 = -1
	for w := pl.written.Load(); w != last; w = pl.written.Load() {
		last = w
		time.Sleep(300 * time.Millisecond)
	}
	if w := pl.written.Load(); w >= n {
		t.Fatalf("client wrote all %d requests while the broker was stalled: the proxy did not stop reading", n)
	}
	frame := int64(len(reqFrame(produceReq("inflight", 0, 1, pl.values[0]), 0)))
	if q := p.QueuedBytes(); q > maxInflight*frame {
		t.Fatalf("queued %d bytes while stalled, want at most %d (%d requests)", q, maxInflight*frame, maxInflight)
	}
	t.Logf("stalled: client wrote %d of %d requests, proxy holds %d bytes", pl.written.Load(), n, p.QueuedBytes())

	release()
	pl.wait(t)
	if pk := p.PeakQueuedBytes(); pk > maxInflight*frame {
		t.Fatalf("peak queued %d bytes, want at most %d", pk, maxInflight*frame)
	}
	waitFor(t, "queued bytes to return to 0", 10*time.Second, func() bool { return p.QueuedBytes() == 0 })
	consumeValues(t, p.Addr(), "inflight", pl.values)
}

// Several clients pipelining against a stalled broker: the proxy never holds more request bytes
// than limits.max_queued_bytes over all of them, and every request is answered once afterwards.
func TestQueuedBytesBound(t *testing.T) {
	const bound = 1 << 20
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "queued"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Limits: Limits{MaxQueuedBytes: bound, MaxInflightPerConnection: 10000}})
	release := stallProduce(c)
	defer release()
	// Large frames take the streaming path, small ones the whole-frame path.
	pls := []*pipeline{
		startPipeline(t, p.Addr(), "queued", "big", 120, 60<<10),
		startPipeline(t, p.Addr(), "queued", "small", 1500, 4<<10),
		startPipeline(t, p.Addr(), "queued", "mid", 400, 20<<10),
	}
	waitFor(t, "the proxy to pause reading", 30*time.Second, func() bool { return p.ReadPauses() > 0 })
	time.Sleep(500 * time.Millisecond)
	if q := p.QueuedBytes(); q > bound {
		t.Fatalf("queued %d bytes while stalled, bound %d", q, bound)
	}
	t.Logf("stalled: proxy holds %d bytes (bound %d), %d pauses", p.QueuedBytes(), bound, p.ReadPauses())
	release()
	var want []string
	for _, pl := range pls {
		pl.wait(t)
		want = append(want, pl.values...)
	}
	if pk := p.PeakQueuedBytes(); pk > bound {
		t.Fatalf("peak queued %d bytes, bound %d", pk, bound)
	}
	waitFor(t, "queued bytes to return to 0", 10*time.Second, func() bool { return p.QueuedBytes() == 0 })
	consumeValues(t, p.Addr(), "queued", want)
}

// kgo clients with many produce requests in flight through a proxy with tight limits still get
// every record acknowledged and stored once.
func TestLimitsWithKgo(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(2), kfake.SeedTopics(4, "kgo-limits"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 2, Options{Limits: Limits{MaxInflightPerConnection: 2, MaxQueuedBytes: 1 << 20}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produceConsume(t, ctx, "kgo-limits", 3000, kgo.SeedBrokers(p.Addr()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5), kgo.ProducerLinger(0))
}

// A client that pipelines Fetch requests and reads none of the responses: the proxy keeps no
// more than about limits.max_outbound_bytes_per_connection of them (the broker's responses wait in
// the sockets instead), and when the client reads, every request is answered in order.
func TestOutboundLimitHoldsBrokerForNonReader(t *testing.T) {
	const (
		n         = 100
		valueSize = 100 << 10
		maxOut    = 1 << 20
	)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "big"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Limits: Limits{MaxOutboundPerConnection: maxOut}})
	var vals []string
	for i := range 9 {
		vals = append(vals, fmt.Sprintf("%02d", i)+strings.Repeat("v", valueSize))
	}
	rc := dialRaw(t, p.Addr())
	rc.send(reqFrame(produceReq("big", 0, -1, vals...), 0))
	if _, err := rc.read(); err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 4
	fetch.MaxBytes, fetch.MinBytes, fetch.MaxWaitMillis = 1<<20, 1, 0
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "big", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20}}}}
	rc.send(reqFrame(fetch, 1))
	f, err := rc.read()
	if err != nil {
		t.Fatal(err)
	}
	respSize := len(f)
	if respSize < 900<<10 {
		t.Fatalf("fetch response is %d bytes; the test needs about 1 MB", respSize)
	}
	var frames [][]byte
	for i := range n {
		frames = append(frames, reqFrame(fetch, int32(100+i)))
	}
	rc.send(frames...) // small: all of them reach the proxy at once
	waitFor(t, "the proxy to hold the broker connection", 30*time.Second, func() bool { return p.ReadPauses() > 0 })
	time.Sleep(500 * time.Millisecond) // a proxy without the bound would keep buffering meanwhile
	// One response may cross the bound before the check, and one more is being written.
	if pk := p.PeakOutboundBytes(); pk > maxOut+2*int64(respSize) {
		t.Fatalf("proxy buffered %d response bytes for a client reading nothing, want at most about %d", pk, maxOut+2*respSize)
	}
	t.Logf("client not reading: proxy buffered at most %d bytes of %d responses of %d bytes", p.PeakOutboundBytes(), n, respSize)
	for i := range n {
		f, err := rc.read()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if corr := int32(binary.BigEndian.Uint32(f[4:])); corr != int32(100+i) || len(f) < respSize/2 {
			t.Fatalf("response %d: corr %d, %d bytes", i, corr, len(f))
		}
	}
}

// Raising limits.max_queued_bytes while clients wait for room lets them go on at once, even with
// nothing released meanwhile (the broker is stalled).
func TestSetLimitsWakesWaitingClients(t *testing.T) {
	const bound = 1 << 20
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "raised"))
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Limits: Limits{MaxQueuedBytes: bound, MaxInflightPerConnection: 10000}})
	release := stallProduce(c)
	defer release()
	pl := startPipeline(t, p.Addr(), "raised", "r", 80, 64<<10) // 5 MiB
	waitFor(t, "the proxy to pause reading", 30*time.Second, func() bool { return p.ReadPauses() > 0 })
	time.Sleep(200 * time.Millisecond)
	if q := p.QueuedBytes(); q > bound {
		t.Fatalf("queued %d bytes, bound %d", q, bound)
	}
	p.SetLimits(Limits{MaxQueuedBytes: 3 * bound, MaxInflightPerConnection: 10000})
	if got := p.Limits().MaxQueuedBytes; got != 3*bound {
		t.Fatalf("Limits() = %d after SetLimits", got)
	}
	waitFor(t, "the client to be read past the old bound", 10*time.Second, func() bool { return p.QueuedBytes() > bound+(128<<10) })
	time.Sleep(200 * time.Millisecond)
	if q := p.QueuedBytes(); q > 3*bound {
		t.Fatalf("queued %d bytes, raised bound %d", q, 3*bound)
	}
	release()
	pl.wait(t)
	consumeValues(t, p.Addr(), "raised", pl.values)
}

// blackholeBroker accepts connections and never reads from them or answers (a broker stuck in a
// long GC pause, a full disk, or a muted channel).
func blackholeBroker(t *testing.T) string {
	t.Helper()
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	return stallingPeer(t, never)
}

// Produce requests with acks=0 get no response slot, so neither
// limits.max_inflight_per_connection nor limits.max_queued_bytes holds them: their reservation
// is released as soon as they are handed to the broker connection. What the broker has not read
// is bounded by limits.max_outbound_bytes_per_connection instead (before, a client producing
// with acks=0 to a broker that does not read had the proxy buffer everything it sent).
func TestAcks0ProduceToAStalledBrokerIsBounded(t *testing.T) {
	const maxQueued = 4 << 20
	p, _ := startProxyOpts(t, []string{blackholeBroker(t)}, 1, Options{Limits: Limits{
		MaxQueuedBytes: maxQueued, MaxInflightPerConnection: 16, MaxOutboundPerConnection: 1 << 20}})
	written := pushAcks0(t, p)
	t.Logf("client wrote %d MiB of acks=0 Produce to a broker that reads nothing; QueuedBytes %d", written>>20, p.QueuedBytes())
	if written > 64<<20 {
		t.Fatalf("the proxy took %d MiB of acks=0 requests for a broker that reads none of them "+
			"(limits.max_queued_bytes = %d): acks=0 requests are not bounded", written>>20, maxQueued)
	}
}

// pushAcks0 writes acks=0 Produce requests of 256 KiB to p for 3 s (at most 512 MiB) and returns
// how much the proxy took: beyond the kernel's socket buffers (a few MiB on loopback for each
// of the client's and the broker's connections) it is held in the proxy.
func pushAcks0(t *testing.T, p *Proxy) int64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	frame := reqFrame(produceReq("t", 0, 0, strings.Repeat("v", 256<<10)), 1)
	var written int64
	deadline := time.Now().Add(3 * time.Second)
	_ = conn.SetWriteDeadline(deadline)
	for time.Now().Before(deadline) && written < 512<<20 {
		n, err := conn.Write(frame)
		written += int64(n)
		if err != nil {
			break
		}
	}
	return written
}
