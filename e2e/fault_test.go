package e2e

import (
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// produceManual produces values to topic through a fresh kgo producer (partition i%6) and
// returns once all are acknowledged.
func (e *env) produceManual(t *testing.T, name, topic string, values []string) {
	t.Helper()
	prod := e.kgoClient(t, name, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rs := kgoRecords(topic, values)
	for i, r := range rs {
		r.Partition = int32(i % numPartitions)
	}
	if err := prod.ProduceSync(testContext(t, 30*time.Second), rs...).FirstErr(); err != nil {
		t.Fatalf("%s: produce to %s: %v", name, topic, err)
	}
}

// expectClosed fails unless the proxy closes conn within a few seconds.
func expectClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the proxy kept the connection open", what)
		}
		return // EOF or reset: closed
	}
}

// TestBadFramesCloseOnlyThatClient sends a frame above max_frame_bytes and a frame too short to
// hold a request header; the proxy must close those connections, log the client's address, and
// keep serving a client that was already connected.
func TestBadFramesCloseOnlyThatClient(t *testing.T) {
	t.Parallel()
	if suite.direct {
		t.Skip("direct mode: this checks the proxy's frame limits")
	}
	const topic = "frames"
	e := newEnvWith(t, envOptions{topics: []string{topic}, proxyArgs: []string{"--max_frame_bytes", "1048576"}})
	first := harness.Lines("before", 60)
	e.produceManual(t, "before", topic, first)

	cases := []struct {
		name  string
		frame []byte
	}{
		{"oversized", binary.BigEndian.AppendUint32(nil, 2<<20)},
		{"short header", append(binary.BigEndian.AppendUint32(nil, 2), 0, 18)},
		{"negative size", binary.BigEndian.AppendUint32(nil, 0xfffffff0)},
	}
	for _, c := range cases {
		conn, err := net.DialTimeout("tcp", e.bootstrap, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		frame := append(c.frame, make([]byte, 100)...)
		if _, err := conn.Write(frame); err != nil {
			t.Fatalf("%s: write: %v", c.name, err)
		}
		expectClosed(t, conn, c.name)
		// The log line names the client by its address; allow the logger a moment.
		client := conn.LocalAddr().String()
		deadline := time.Now().Add(3 * time.Second)
		for !strings.Contains(e.proxy.Logs(), client) {
			if time.Now().After(deadline) {
				t.Errorf("%s: no proxy log line names client %s", c.name, client)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	select {
	case <-e.proxy.Exited():
		t.Fatal("the proxy exited")
	default:
	}
	second := harness.Lines("after", 60)
	e.produceManual(t, "after", topic, second)
	checkSame(t, "after bad frames", append(first, second...), e.kgoConsume(t, "frames-consumer", topic, len(first)+len(second), nil))
}

// TestBrokerAddedAndRemoved adds a broker node to the running cluster (the proxy must open a
// listener for the new node id when Metadata reveals it) and later removes another; produce and
// consume through the proxy keep working and every advertised address stays the proxy's.
func TestBrokerAddedAndRemoved(t *testing.T) {
	t.Parallel()
	const topic = "nodes"
	e := newEnvWith(t, envOptions{topics: []string{topic}, nodeSlots: 5})
	id, port, err := e.kafka.AddNode(-1, 0)
	if err != nil {
		t.Fatalf("add node: %v", err)
	}
	if suite.direct {
		e.advertised[id] = "127.0.0.1:" + strconv.Itoa(port)
	} else {
		e.advertised[id] = e.proxy.BrokerAddr(id)
		e.upstream["127.0.0.1:"+strconv.Itoa(port)] = true
	}
	if err := e.kafka.MoveTopicPartition(topic, 0, id); err != nil {
		t.Fatalf("move partition 0 to node %d: %v", id, err)
	}
	e.checkNodesN(t, "Metadata after adding a node", e.metadataNodes(t, topic, map[int32]int32{0: id}), numBrokers+1)

	first := harness.Lines("four-nodes", 60)
	e.produceManual(t, "producer-4", topic, first)
	checkSame(t, "with the added node", first, e.kgoConsume(t, "consumer-4", topic, len(first), nil))

	const removed = 1
	if err := e.kafka.RemoveNode(removed); err != nil {
		t.Fatalf("remove node %d: %v", removed, err)
	}
	// The removed node's proxy address stays valid for what clients learned before the removal.
	after := e.metadataNodes(t, topic, nil)
	if a, ok := after[removed]; ok {
		t.Errorf("Metadata still lists removed node %d at %s", removed, a)
	}
	e.checkNodesN(t, "Metadata after removing a node", after, numBrokers)

	second := harness.Lines("three-nodes", 60)
	e.produceManual(t, "producer-3", topic, second)
	checkSame(t, "after removing a node", append(first, second...), e.kgoConsume(t, "consumer-3", topic, len(first)+len(second), nil))
	if e.proxy != nil {
		select {
		case <-e.proxy.Exited():
			t.Fatal("the proxy exited")
		default:
		}
	}
}

// metadataNodes asks Metadata v12 through the bootstrap and returns node id → address; it also
// checks the given partition leaders.
func (e *env) metadataNodes(t *testing.T, topic string, leaders map[int32]int32) map[int32]string {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &topic
	req.Topics = append(req.Topics, rt)
	resp, err := harness.RawRequest(testContext(t, 10*time.Second), e.bootstrap, req)
	if err != nil {
		t.Fatal(err)
	}
	md := resp.(*kmsg.MetadataResponse)
	nodes := map[int32]string{}
	for _, b := range md.Brokers {
		nodes[b.NodeID] = hostPort(b.Host, b.Port)
	}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			if want, ok := leaders[p.Partition]; ok && p.Leader != want {
				t.Errorf("partition %d leader %d, want %d", p.Partition, p.Leader, want)
			}
		}
	}
	return nodes
}
