package proxy

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Large requests are forwarded while they arrive: a 600 KB produce written in small pieces with
// pauses, pipelined with small requests, is stored exactly and answered in order.
func TestLargeFrameStreamedInPieces(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "big"))
	p, _ := startProxy(t, c.ListenAddrs(), 1, nil)
	var vals []string
	for i := range 600 {
		vals = append(vals, fmt.Sprintf("%04d%s", i, strings.Repeat("x", 996)))
	}
	big := reqFrame(produceReq("big", 0, -1, vals...), 1)
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1
	stream := append(append(append([]byte(nil), big...), reqFrame(meta, 2)...), reqFrame(produceReq("big", 0, -1, "tail"), 3)...)
	rc := dialRaw(t, p.Addr())
	for off := 0; off < len(stream); off += 7000 {
		rc.send(stream[off:min(off+7000, len(stream))])
		if off%70000 == 0 {
			time.Sleep(2 * time.Millisecond) // let the proxy see partial frames
		}
	}
	for corr := int32(1); corr <= 3; corr++ {
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		if got := int32(f[4])<<24 | int32(f[5])<<16 | int32(f[6])<<8 | int32(f[7]); got != corr {
			t.Fatalf("got corr %d, want %d", got, corr)
		}
	}
	recs := consumeAll(t, ctx, p.Addr(), "big", 601)
	for i, r := range recs[:600] {
		if string(r.Value) != vals[i] {
			t.Fatalf("record %d: %.20q", i, r.Value)
		}
	}
	if string(recs[600].Value) != "tail" {
		t.Fatalf("last record %q", recs[600].Value)
	}
}

// recordsHook intercepts Produce and keeps a copy of every partition's records as the hook saw
// them, so a test can compare them with what the client sent. Its Finish checks that the request's
// bytes are unchanged once every request has begun: a buffer handed back too early would have
// been refilled by a later one.
type recordsHook struct {
	total   int
	mu      sync.Mutex
	seen    [][]byte // records of each request's first partition, in request order
	changed []int    // requests whose records changed under Finish
	allIn   chan struct{}
}

func (h *recordsHook) Intercepts(key int16) bool { return key == 0 }

func (h *recordsHook) Begin(_ context.Context, _ ConnInfo, req kmsg.Request) Step {
	alias := req.(*kmsg.ProduceRequest).Topics[0].Partitions[0].Records
	h.mu.Lock()
	i := len(h.seen)
	h.seen = append(h.seen, append([]byte(nil), alias...))
	if len(h.seen) == h.total {
		close(h.allIn)
	}
	h.mu.Unlock()
	return Step{Finish: func(_ context.Context, resp kmsg.Response) kmsg.Response {
		select {
		case <-h.allIn:
		case <-time.After(10 * time.Second): // the test fails on the count of requests seen
		}
		h.mu.Lock()
		if !bytes.Equal(alias, h.seen[i]) {
			h.changed = append(h.changed, i+1)
		}
		h.mu.Unlock()
		return resp
	}}
}

// Large intercepted requests are gathered whole while they arrive in pieces: the hook sees exactly
// the bytes sent (one frame past the initial gather buffer, so the buffer grows), pooled buffers
// are not reused while a Finish may read them, the broker stores the records, and responses stay
// in request order.
func TestLargeInterceptedFrameGatheredInPieces(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "big"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "16777216"}))
	hook := &recordsHook{total: 5, allIn: make(chan struct{})}
	p, _ := startProxy(t, c.ListenAddrs(), 1, hook)
	values := func(n, size int, tag string) []string {
		var vals []string
		for i := range n {
			vals = append(vals, fmt.Sprintf("%s%06d%s", tag, i, strings.Repeat("y", size-7)))
		}
		return vals
	}
	small, other, huge := values(600, 1000, "a"), values(600, 1000, "c"), values(1, gatherInitial+(1<<20), "b")
	reqs := map[int32]*kmsg.ProduceRequest{
		1: produceReq("big", 0, -1, small...),
		2: produceReq("big", 0, -1, "between"),
		3: produceReq("big", 0, -1, huge...),
		4: produceReq("big", 0, -1, other...),
		5: produceReq("big", 0, -1, small...),
	}
	var stream []byte
	for corr := int32(1); corr <= 5; corr++ {
		stream = append(stream, reqFrame(reqs[corr], corr)...)
	}
	rc := dialRaw(t, p.Addr())
	for off := 0; off < len(stream); off += 7000 {
		rc.send(stream[off:min(off+7000, len(stream))])
		if off%(70000*7) == 0 {
			time.Sleep(time.Millisecond) // let the proxy see partial frames
		}
	}
	for corr := int32(1); corr <= 5; corr++ {
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		if got := int32(f[4])<<24 | int32(f[5])<<16 | int32(f[6])<<8 | int32(f[7]); got != corr {
			t.Fatalf("got corr %d, want %d", got, corr)
		}
		var resp kmsg.ProduceResponse
		resp.Version = reqs[corr].Version
		if err := resp.ReadFrom(f[8:]); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("corr %d: produce response %+v %v", corr, resp, err)
		}
	}
	hook.mu.Lock()
	if len(hook.seen) != len(reqs) {
		t.Fatalf("hook saw %d requests, want %d", len(hook.seen), len(reqs))
	}
	for i, seen := range hook.seen {
		corr := int32(i + 1)
		if want := reqs[corr].Topics[0].Partitions[0].Records; !bytes.Equal(seen, want) {
			t.Errorf("corr %d: hook saw %d record bytes, client sent %d (or they differ)", corr, len(seen), len(want))
		}
	}
	if len(hook.changed) > 0 {
		t.Errorf("requests %v changed while their Finish ran", hook.changed)
	}
	hook.mu.Unlock()
	want := slices.Concat(small, []string{"between"}, huge, other, small)
	recs := consumeAll(t, ctx, p.Addr(), "big", len(want))
	for i, r := range recs {
		if string(r.Value) != want[i] {
			t.Fatalf("record %d: %.20q…, want %.20q…", i, r.Value, want[i])
		}
	}
}
