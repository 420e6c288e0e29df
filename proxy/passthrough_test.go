package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Idempotent kgo producers with every codec through the proxy in front of 3 kfake brokers; all
// records are consumed back through the proxy, stored compressed with the codec, and every broker
// address a client can learn is a proxy address.
func TestProduceConsumeAllCodecs(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(6, "gzip", "snappy", "lz4", "zstd"))
	p, bp := startProxy(t, c.ListenAddrs(), 3, nil)
	proxyAddrs := map[string]bool{}
	for _, port := range bp {
		proxyAddrs[net.JoinHostPort("127.0.0.1", strconv.Itoa(port))] = true
	}

	codecs := map[string]kgo.CompressionCodec{"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	codecType := map[string]uint8{"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	const n = 300
	for name, codec := range codecs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.ProducerBatchCompression(codec),
			kgo.DefaultProduceTopic(name), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			v := fmt.Sprintf("%s record %04d %s", name, i, bytes.Repeat([]byte("abcdef"), 20))
			cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce %s: %v", name, err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		cl.Close()

		recs := consumeAll(t, ctx, p.Addr(), name, n)
		seen := map[string]bool{}
		for _, r := range recs {
			i, _ := strconv.Atoi(string(r.Key))
			want := fmt.Sprintf("%s record %04d %s", name, i, bytes.Repeat([]byte("abcdef"), 20))
			if string(r.Value) != want {
				t.Fatalf("%s: key %s value %q", name, r.Key, r.Value)
			}
			if got := r.Attrs.CompressionType(); got != codecType[name] {
				t.Fatalf("%s: stored batch codec %d", name, got)
			}
			seen[string(r.Key)] = true
		}
		if len(recs) != n || len(seen) != n {
			t.Fatalf("%s: consumed %d records, %d distinct, want %d", name, len(recs), len(seen), n)
		}
	}

	// Every address a client learns is the proxy's: Metadata, FindCoordinator, DescribeCluster.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 {
		t.Fatalf("brokers %+v", md.Brokers)
	}
	for _, b := range md.Brokers {
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if !proxyAddrs[addr] || bp[b.NodeID] != int(b.Port) {
			t.Fatalf("metadata: node %d at %s is not its proxy address", b.NodeID, addr)
		}
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{"group-a", "group-b"}
	fresp, err := fc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range fresp.Coordinators {
		addr := net.JoinHostPort(co.Host, strconv.Itoa(int(co.Port)))
		if co.ErrorCode != 0 || !proxyAddrs[addr] {
			t.Fatalf("find coordinator v%d: %+v", fresp.Version, co)
		}
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	dresp, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(dresp.Brokers) != 3 {
		t.Fatalf("describe cluster %+v", dresp)
	}
	for _, b := range dresp.Brokers {
		if addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); !proxyAddrs[addr] {
			t.Fatalf("describe cluster: node %d at %s", b.NodeID, addr)
		}
	}

	// ApiVersions through the proxy: Produce 0..12 and Fetch max 15.
	av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range av.ApiKeys {
		if k.ApiKey == 0 && (k.MinVersion != 0 || k.MaxVersion != 12) || k.ApiKey == 1 && k.MaxVersion != 15 {
			t.Fatalf("api versions key %d: %d-%d", k.ApiKey, k.MinVersion, k.MaxVersion)
		}
	}
}

// An unknown API key is forwarded as the client's exact bytes and the broker's answer comes back
// unchanged, in order with other requests.
func TestUnknownKeyForwardedVerbatim(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	// A byte-recording upstream: it answers each frame with a frame carrying its correlation id.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 4)
	serve := func(c net.Conn) {
		defer c.Close()
		r := &rawConn{t: t, c: c}
		for {
			f, err := r.read()
			if err != nil || f[4] == 0 && f[5] == 3 { // the proxy's own broker discovery: hang up
				return
			}
			got <- f
			resp := []byte{0, 0, 0, 9, f[8], f[9], f[10], f[11], 0xca, 0xfe, 0xba, 0xbe, 0x01}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	p, _ := startProxy(t, []string{ln.Addr().String()}, 0, nil)
	rc := dialRaw(t, p.Addr())
	frame := []byte{0, 0, 0, 0, 0x27, 0x11 /* 10001 */, 0, 1, 0, 0, 0, 42, 0, 3, 'c', 'l', 'i', 1, 2, 3, 4, 5}
	putInt32(frame, int32(len(frame)-4))
	rc.send(frame)
	select {
	case f := <-got:
		if !bytes.Equal(f, frame) {
			t.Fatalf("upstream got %x, client sent %x", f, frame)
		}
	case <-ctx.Done():
		t.Fatal("unknown key not forwarded")
	}
	resp, err := rc.read()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0, 0, 0, 9, 0, 0, 0, 42, 0xca, 0xfe, 0xba, 0xbe, 0x01}; !bytes.Equal(resp, want) {
		t.Fatalf("client got %x, want %x", resp, want)
	}
}

// kfake dereferences nil on a key kmsg does not know (it would crash the test binary), so against
// kfake this uses a key kmsg knows but kfake does not serve (LeaderAndIsr, inter-broker only):
// kfake drops that connection, the proxy closes the client's connection and keeps serving others.
func TestKeyBrokerRejectsProxyStaysUp(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	p, _ := startProxy(t, c.ListenAddrs(), 1, nil)
	rc := dialRaw(t, p.Addr())
	lai := kmsg.NewPtrLeaderAndISRRequest()
	rc.send(reqFrame(lai, 7))
	if f, err := rc.read(); err == nil {
		// kfake answered: the correlation id must be ours.
		if corr := int32(f[4])<<24 | int32(f[5])<<16 | int32(f[6])<<8 | int32(f[7]); corr != 7 {
			t.Fatalf("response corr %d", corr)
		}
	} else if !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("proxy down after unknown key: %v", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

// A frame above max_frame_bytes and a malformed header close only that client.
func TestBadFramesCloseOnlyThatClient(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	p, _ := startProxy(t, c.ListenAddrs(), 1, nil)
	for name, frame := range map[string][]byte{
		"too big":         {0x7f, 0, 0, 0, 0, 3},
		"negative size":   {0xff, 0xff, 0xff, 0xf0},
		"bad client id":   {0, 0, 0, 12, 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0x00, 0, 0},
		"negative key":    {0, 0, 0, 10, 0x80, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff},
		"produce no body": {0, 0, 0, 10, 0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff},
	} {
		rc := dialRaw(t, p.Addr())
		rc.send(frame)
		if f, err := rc.read(); err == nil {
			t.Fatalf("%s: got a response %x, want the connection closed", name, f)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("proxy down after bad frames: %v", err)
	}
}

// A client asking for an ApiVersions version above what the proxy parses gets a v0 answer with
// UNSUPPORTED_VERSION, in order with its other requests.
func TestApiVersionsTooNewFallback(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	p, _ := startProxy(t, c.ListenAddrs(), 1, nil)
	rc := dialRaw(t, p.Addr())
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1
	high := []byte{0, 0, 0, 0, 0, 18, 0, 99, 0, 0, 0, 2, 0xff, 0xff, 0} // ApiVersions v99
	putInt32(high, int32(len(high)-4))
	v3 := kmsg.NewPtrApiVersionsRequest()
	v3.Version = 3
	v3.ClientSoftwareName, v3.ClientSoftwareVersion = "t", "1"
	rc.send(reqFrame(meta, 1), high, reqFrame(v3, 3))
	for corr := int32(1); corr <= 3; corr++ {
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		if got := int32(f[4])<<24 | int32(f[5])<<16 | int32(f[6])<<8 | int32(f[7]); got != corr {
			t.Fatalf("response %d has corr %d", corr, got)
		}
		if corr == 2 {
			var r kmsg.ApiVersionsResponse
			if err := r.ReadFrom(f[8:]); err != nil || r.ErrorCode != 35 || len(r.ApiKeys) != 1 || r.ApiKeys[0].MaxVersion != 5 {
				t.Fatalf("fallback answer %+v %v", r, err)
			}
		}
	}
}

// A broker that goes away closes its clients' connections; the proxy keeps running.
func TestUpstreamGoneClosesClient(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close() // the broker dies right away
		}
	}()
	p, _ := startProxy(t, []string{ln.Addr().String()}, 0, nil)
	rc := dialRaw(t, p.Addr())
	rc.send(reqFrame(kmsg.NewPtrMetadataRequest(), 1))
	if _, err := rc.read(); err == nil {
		t.Fatal("got a response from a dead broker")
	}
	// The bootstrap listener still accepts.
	d := net.Dialer{}
	c2, err := d.DialContext(ctx, "tcp", p.Addr())
	if err != nil {
		t.Fatalf("proxy stopped accepting: %v", err)
	}
	c2.Close()
}
