package proxy

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
)

// A node mapped with broker_ports onto the port another node derives (listen port + 1 + id)
// must not share it: whichever node is seen first takes the listener, and clients of the other
// are sent to the wrong broker (NOT_LEADER forever). Nor may a node id be given the bootstrap
// port (id -1 derives it).
func TestBrokerPortsDoNotCollide(t *testing.T) {
	base := freeport.BlockT(t, 3)
	p, err := New(Options{Listen: "127.0.0.1:" + strconv.Itoa(base), Bootstrap: []string{"127.0.0.1:1"},
		BrokerPorts: map[int32]int{1: base + 1}, // node 0's derived port
		Logger:      slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	_, p0 := p.mapAddr(0, "10.0.0.1", 9092) // seen first: takes base+1 today
	_, p1 := p.mapAddr(1, "10.0.0.2", 9092)
	if p0 == p1 {
		t.Errorf("nodes 0 and 1 are both advertised at port %d", p0)
	}
	if _, open := p.BrokerAddr(1); !open {
		t.Errorf("node 1, mapped to port %d by broker_ports, has no listener", base+1)
	}
	if _, pm := p.mapAddr(-1, "10.0.0.3", 9092); int(pm) == base {
		t.Errorf("node -1 is advertised at the bootstrap port %d", base)
	}

	for name, bp := range map[string]map[int32]int{
		"duplicate":      {0: base + 5, 1: base + 5},
		"bootstrap port": {0: base},
	} {
		if _, err := New(Options{Listen: "127.0.0.1:" + strconv.Itoa(base), Bootstrap: []string{"127.0.0.1:1"}, BrokerPorts: bp}); err == nil {
			t.Errorf("broker_ports %s %v accepted", name, bp)
		}
	}
}
