package proxy

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// holdingFinishHook intercepts Produce with a Finish that tells started, then holds the decoded
// response until release.
type holdingFinishHook struct {
	started chan struct{}
	release chan struct{}
}

func (h *holdingFinishHook) Intercepts(key int16) bool { return key == 0 }

func (h *holdingFinishHook) Begin(context.Context, ConnInfo, kmsg.Request) Step {
	return Step{Finish: func(_ context.Context, resp kmsg.Response) kmsg.Response {
		close(h.started)
		<-h.release
		return resp
	}}
}

// A broker's response carrying a tagged field this kmsg does not know (brokers add tagged fields
// without a version bump, as KIP-951 did to Produce) reaches the client unchanged when a hook's
// Finish holds it while the event loop reads other bytes: kmsg keeps unknown tags as slices of
// what it decoded, which must not be the loop's read buffer.
func TestFinishedResponseKeepsUnknownTaggedFields(t *testing.T) {
	tag := bytes.Repeat([]byte("T"), 64)
	metadataSeen := make(chan struct{}, 1)
	addr := scriptedBroker(t, func(req kmsg.Request) kmsg.Response {
		if _, ok := req.(*kmsg.ProduceRequest); ok {
			r := kmsg.NewPtrProduceResponse()
			r.Topics = []kmsg.ProduceResponseTopic{{Topic: "t", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0, BaseOffset: 7}}}}
			r.UnknownTags.Set(5, tag)
			return r
		}
		select {
		case metadataSeen <- struct{}{}:
		default:
		}
		return kmsg.NewPtrMetadataResponse()
	})
	hook := &holdingFinishHook{started: make(chan struct{}), release: make(chan struct{})}
	p, _ := startProxy(t, []string{addr}, 1, hook)
	rc := dialRaw(t, p.Addr())
	produce := produceReq("t", 0, -1, "v")
	produce.Version = 9 // flexible: responses carry tagged fields
	rc.send(reqFrame(produce, 1))
	select {
	case <-hook.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the hook's Finish never started")
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1
	name := strings.Repeat("Z", 300)
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	rc.send(reqFrame(meta, 2))
	select {
	case <-metadataSeen: // the loop has read the Metadata request's bytes and forwarded them
	case <-time.After(10 * time.Second):
		t.Fatal("the Metadata request never reached the broker")
	}
	close(hook.release)
	f, err := rc.read()
	if err != nil {
		t.Fatal(err)
	}
	var r kmsg.ProduceResponse
	r.Version = 9
	if err := r.ReadFrom(f[9:]); err != nil { // size, correlation id, empty header tags
		t.Fatal(err)
	}
	var got []byte
	r.UnknownTags.Each(func(k uint32, v []byte) {
		if k == 5 {
			got = v
		}
	})
	if !bytes.Equal(got, tag) {
		t.Fatalf("tag 5 reached the client as %q, the broker sent %q", got, tag)
	}
}
