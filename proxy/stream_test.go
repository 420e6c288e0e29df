package proxy

import (
	"fmt"
	"strings"
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
