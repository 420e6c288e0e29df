package protocol

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testMapper sends node n to proxy:(20000+n) and records what it saw.
type testMapper struct{ seen map[int32]string }

func (m *testMapper) mapAddr(id int32, host string, port int32) (string, int32) {
	if m.seen == nil {
		m.seen = map[int32]string{}
	}
	m.seen[id] = host
	return "proxy.local", 20000 + id
}

// roundTrip encodes resp, rewrites the frame and decodes the result.
func roundTrip(t *testing.T, resp kmsg.Response) (kmsg.Response, *testMapper) {
	t.Helper()
	m := &testMapper{}
	frame := AppendResponse(nil, 5, resp)
	out, err := RewriteResponse(frame, resp.Key(), resp.GetVersion(), m.mapAddr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(out, resp.Key(), resp.GetVersion())
	if err != nil {
		t.Fatal(err)
	}
	return got, m
}

func TestRewriteMetadataAllVersions(t *testing.T) {
	rack := "r1"
	for v := int16(0); v <= 13; v++ {
		r := kmsg.NewPtrMetadataResponse()
		r.Version = v
		r.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: "b0", Port: 9092}, {NodeID: 7, Host: "b7", Port: 9093, Rack: &rack}}
		r.Topics = []kmsg.MetadataResponseTopic{{Topic: kmsg.StringPtr("t"), Partitions: []kmsg.MetadataResponseTopicPartition{{Partition: 0, Leader: 7}}}}
		got, m := roundTrip(t, r)
		g := got.(*kmsg.MetadataResponse)
		if len(g.Brokers) != 2 || g.Brokers[0].NodeID != 0 || g.Brokers[1].NodeID != 7 {
			t.Fatalf("v%d brokers %+v", v, g.Brokers)
		}
		for _, b := range g.Brokers {
			if b.Host != "proxy.local" || b.Port != 20000+b.NodeID {
				t.Fatalf("v%d broker %d at %s:%d", v, b.NodeID, b.Host, b.Port)
			}
		}
		if m.seen[7] != "b7" || *g.Topics[0].Topic != "t" || g.Topics[0].Partitions[0].Leader != 7 {
			t.Fatalf("v%d: seen %v topics %+v", v, m.seen, g.Topics)
		}
	}
}

func TestRewriteFindCoordinatorAllVersions(t *testing.T) {
	for v := int16(0); v <= 6; v++ {
		r := kmsg.NewPtrFindCoordinatorResponse()
		r.Version = v
		if v < 4 {
			r.NodeID, r.Host, r.Port = 2, "b2", 9092
		} else {
			r.Coordinators = []kmsg.FindCoordinatorResponseCoordinator{
				{Key: "g1", NodeID: 2, Host: "b2", Port: 9092},
				{Key: "g2", NodeID: -1, ErrorCode: 15}, // COORDINATOR_NOT_AVAILABLE: left alone
			}
		}
		got, _ := roundTrip(t, r)
		g := got.(*kmsg.FindCoordinatorResponse)
		if v < 4 {
			if g.NodeID != 2 || g.Host != "proxy.local" || g.Port != 20002 {
				t.Fatalf("v%d: %+v", v, g)
			}
			continue
		}
		c := g.Coordinators
		if len(c) != 2 || c[0].Key != "g1" || c[0].NodeID != 2 || c[0].Host != "proxy.local" || c[0].Port != 20002 {
			t.Fatalf("v%d: %+v", v, c)
		}
		if c[1].NodeID != -1 || c[1].Host != "" || c[1].Port != 0 || c[1].ErrorCode != 15 {
			t.Fatalf("v%d failed lookup rewritten: %+v", v, c[1])
		}
	}
}

func TestRewriteDescribeClusterAllVersions(t *testing.T) {
	for v := int16(0); v <= 2; v++ {
		r := kmsg.NewPtrDescribeClusterResponse()
		r.Version = v
		r.ClusterID = "c1"
		r.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: 1, Host: "b1", Port: 9092}, {NodeID: 3, Host: "b3", Port: 9092}}
		got, _ := roundTrip(t, r)
		g := got.(*kmsg.DescribeClusterResponse)
		if g.ClusterID != "c1" || len(g.Brokers) != 2 {
			t.Fatalf("v%d %+v", v, g)
		}
		for _, b := range g.Brokers {
			if b.Host != "proxy.local" || b.Port != 20000+b.NodeID {
				t.Fatalf("v%d broker %+v", v, b)
			}
		}
	}
}

func TestRewriteProduceNodeEndpoints(t *testing.T) {
	for v := int16(10); v <= 12; v++ {
		r := kmsg.NewPtrProduceResponse()
		r.Version = v
		r.Topics = []kmsg.ProduceResponseTopic{{Topic: "t", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0, ErrorCode: 6}}}}
		r.Brokers = []kmsg.ProduceResponseBroker{{NodeID: 4, Host: "b4", Port: 9092}}
		got, _ := roundTrip(t, r)
		g := got.(*kmsg.ProduceResponse)
		if len(g.Brokers) != 1 || g.Brokers[0].NodeID != 4 || g.Brokers[0].Host != "proxy.local" || g.Brokers[0].Port != 20004 {
			t.Fatalf("v%d %+v", v, g.Brokers)
		}
		if g.Topics[0].Topic != "t" || g.Topics[0].Partitions[0].ErrorCode != 6 {
			t.Fatalf("v%d topics %+v", v, g.Topics)
		}
	}
	// Without node_endpoints the broker's bytes are kept as they are.
	r := kmsg.NewPtrProduceResponse()
	r.Version = 12
	r.Topics = []kmsg.ProduceResponseTopic{{Topic: "t", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0, BaseOffset: 42}}}}
	frame := AppendResponse(nil, 1, r)
	out, err := RewriteResponse(frame, 0, 12, (&testMapper{}).mapAddr)
	if err != nil || !bytes.Equal(out, frame) || &out[0] != &frame[0] {
		t.Fatalf("unchanged produce response was copied or altered: %v", err)
	}
	if NeedsRewrite(0, 9) || NeedsRewrite(1, 15) || !NeedsRewrite(0, 10) || NeedsRewrite(10001, 0) {
		t.Fatal("NeedsRewrite")
	}
}
