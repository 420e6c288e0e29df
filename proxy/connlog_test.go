package proxy

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// lockedBuffer is a log destination written by several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A reconnect storm writes a sample of its per-connection lines, not one per connection: the
// first connLogBurst of a second, then the next line out says how many were left out. The
// metric still counts every connection.
func TestReconnectStormDoesNotFloodTheLog(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	var logs lockedBuffer
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const storm = 200
	for range storm {
		conn, err := net.DialTimeout("tcp", p.Addr(), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	counted := func() float64 {
		var m dto.Metric
		if err := p.metrics.connsTotal.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	for counted() < storm {
		if time.Now().After(deadline) {
			t.Fatalf("connections counted: %v, want %d", counted(), storm)
		}
		time.Sleep(10 * time.Millisecond)
	}
	connected := strings.Count(logs.String(), `msg="client connected"`)
	if connected < 1 || connected > 2*connLogBurst { // the storm may straddle two seconds
		t.Errorf("%d of %d connections logged \"client connected\", want 1 to %d", connected, storm, 2*connLogBurst)
	}
	time.Sleep(1100 * time.Millisecond)
	conn, err := net.DialTimeout("tcp", p.Addr(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "suppressed=") {
		if time.Now().After(deadline) {
			t.Fatalf("no line after the storm counts the suppressed ones:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
