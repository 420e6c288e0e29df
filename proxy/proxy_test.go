package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
)

// freePorts returns n free loopback ports, a block from below the kernel's ephemeral range (see
// freeport): ports from listening on :0 are released before use, and any connection a test
// process opens meanwhile can take one.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	base := freeport.BlockT(t, n)
	ports := make([]int, n)
	for i := range ports {
		ports[i] = base + i
	}
	return ports
}

// startProxy runs a proxy in front of bootstrap, with broker listeners for node ids 0..nodes-1 on
// free ports, and stops it when the test ends.
func startProxy(t testing.TB, bootstrap []string, nodes int, hook Hook) (*Proxy, map[int32]int) {
	t.Helper()
	return startProxyOpts(t, bootstrap, nodes, Options{Hook: hook})
}

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawConn is a hand-driven Kafka connection for exact request/response checks.
type rawConn struct {
	t testing.TB
	c net.Conn
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// send writes whole frames in one write (so they are pipelined).
func (r *rawConn) send(frames ...[]byte) {
	r.t.Helper()
	var all []byte
	for _, f := range frames {
		all = append(all, f...)
	}
	if _, err := r.c.Write(all); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response frame (size prefix included).
func (r *rawConn) read() ([]byte, error) {
	var p [4]byte
	if _, err := io.ReadFull(r.c, p[:]); err != nil {
		return nil, err
	}
	n := int(int32(uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])))
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("response size %d", n)
	}
	f := make([]byte, 4+n)
	copy(f, p[:])
	_, err := io.ReadFull(r.c, f[4:])
	return f, err
}

func reqFrame(req kmsg.Request, corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test")).AppendRequest(nil, req, corr)
}

// produceReq builds a Produce v7 (acks=all) of one uncompressed batch with values to topic/partition.
func produceReq(topic string, partition int32, acks int16, values ...string) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = acks
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: recordBatch(values...)}}}}
	return req
}

// recordBatch encodes a v2 record batch (magic 2, no compression, not idempotent).
func recordBatch(values ...string) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		body := r.AppendTo(nil)[1:] // Length 0 encodes as one byte
		r.Length = int32(len(body))
		recs = r.AppendTo(recs)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: now, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(values)), Records: recs}
	out := b.AppendTo(nil)
	putInt32(out[8:], int32(len(out)-12))
	putInt32(out[17:], int32(crc32c(out[21:])))
	return out
}

func putInt32(b []byte, v int32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// consumeAll reads n records of topic through addr and returns their values by partition.
func consumeAll(t *testing.T, ctx context.Context, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(out), n, topic, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Errorf("fetch %s/%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}
