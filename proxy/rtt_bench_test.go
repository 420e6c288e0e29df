package proxy

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// benchRTT sends one Produce request of about size bytes at a time and waits for its response.
func benchRTT(b *testing.B, addr string, size int) {
	rc := dialRaw(b, addr)
	var vals []string
	for range max(1, size/1024) {
		vals = append(vals, string(make([]byte, 1000)))
	}
	f := reqFrame(produceReq("bench", 0, -1, vals...), 1)
	b.SetBytes(int64(len(f)))
	b.ResetTimer()
	for range b.N {
		rc.send(f)
		if _, err := rc.read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRTT compares one-request-at-a-time round trips directly and through the proxy. The
// broker, the client and the proxy share this process, so absolute numbers include their
// scheduling on each other; e2e/cmd/loadbench measures with the proxy in its own process.
func BenchmarkRTT(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bench"), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p, _ := startProxy(b, c.ListenAddrs(), 1, nil)
	for _, size := range []int{1 << 10, 64 << 10, 512 << 10} {
		name := strconv.Itoa(size>>10) + "KiB"
		b.Run("direct/"+name, func(b *testing.B) { benchRTT(b, c.ListenAddrs()[0], size) })
		b.Run("proxy/"+name, func(b *testing.B) { benchRTT(b, p.Addr(), size) })
	}
}
