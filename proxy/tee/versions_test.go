package tee_test

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
)

// A Produce version the proxy does not parse (v13, which names topics by id; the proxy
// advertises up to 12) from a client that skipped ApiVersions must not reach the broker
// untouched: the teed topic would get the record and OpenMLDB nothing. The proxy closes the
// connection, as a broker does for a version it does not support.
func TestProduceVersionTheProxyDoesNotParseClosesTheConnection(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	direct, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("topic1")
	meta.Topics = append(meta.Topics, mt)
	metaResp, err := meta.RequestWith(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version = 13
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.TopicID = metaResp.Topics[0].TopicID
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, rawBatch(seedRow(1))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(protocol.AppendRequest(nil, protocol.RequestHeader{CorrelationID: 7, ClientID: []byte("raw")}, req)); err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:]); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("Produce v13 got %v, want the connection closed", err)
	}
	if got := e.topicRecords(t, "topic1"); len(got) != 0 {
		t.Fatalf("the topic holds %d records: the request reached the broker", len(got))
	}
}

// isReset reports a connection reset by the peer.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// Every API the tee intercepts has a version range in protocol's registry, so ApiVersions never
// advertises a version of it the proxy cannot decode (InitProducerId had none: a broker offering
// v6 would have been advertised as is, and producers choosing it disconnected).
func TestInterceptedAPIsHaveAVersionRange(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	for key := int16(0); key < 1000; key++ {
		if !e.tee.Intercepts(key) {
			continue
		}
		_, max, ok := protocol.Supported(key)
		if !ok {
			t.Errorf("%s (key %d) is intercepted but has no version range in protocol's registry", kmsg.NameForKey(key), key)
			continue
		}
		if req := kmsg.RequestForKey(key); req == nil || max > req.MaxVersion() {
			t.Errorf("%s (key %d): registered up to v%d, beyond what kmsg decodes", kmsg.NameForKey(key), key, max)
		}
	}
}
