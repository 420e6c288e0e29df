package proxy

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
)

// Without broker_ports, node n listens on the bootstrap port + 1 + n, opened at start (discovery).
func TestDefaultBrokerPorts(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(3))
	base := freeport.BlockT(t, 4)
	p, err := New(Options{Listen: "127.0.0.1:" + strconv.Itoa(base), Bootstrap: c.ListenAddrs(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
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
		if b.Host != "127.0.0.1" || int(b.Port) != base+1+int(b.NodeID) {
			t.Fatalf("node %d at %s:%d, want port %d", b.NodeID, b.Host, b.Port, base+1+int(b.NodeID))
		}
		if addr, open := p.BrokerAddr(b.NodeID); !open || addr != net.JoinHostPort("127.0.0.1", strconv.Itoa(int(b.Port))) {
			t.Fatalf("BrokerAddr(%d) = %s, %v", b.NodeID, addr, open)
		}
	}
	// Each broker listener reaches its own broker: a ping through every one of them works.
	for _, b := range md.Brokers {
		one, err := kgo.NewClient(kgo.SeedBrokers(net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))))
		if err != nil {
			t.Fatal(err)
		}
		err = one.Ping(ctx)
		one.Close()
		if err != nil {
			t.Fatalf("through node %d listener: %v", b.NodeID, err)
		}
	}
}

// A node id whose derived port (listen port + 1 + id) is beyond 65535 gets no listener, and the
// proxy says so once, naming the node and the remedy, instead of silently telling clients a
// port they cannot reach.
func TestNodeIDBeyondThePortRangeIsReported(t *testing.T) {
	var logs lockedBuffer
	p, _ := startProxyOpts(t, []string{"127.0.0.1:1"}, 0, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		p.mapAddr(70000, "127.0.0.1", 9092)
	}
	if _, open := p.BrokerAddr(70000); open {
		t.Fatal("a listener opened on a port beyond 65535")
	}
	if n := strings.Count(logs.String(), "port is out of range; map it with broker_ports"); n != 1 {
		t.Fatalf("%d reports of node 70000's port, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "node=70000") {
		t.Errorf("the report does not name the node:\n%s", logs.String())
	}
}
