package proxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
)

// fakeHook intercepts Produce and CreateTopics:
//   - Produce to "slow": forwarded as is, Finish waits and marks the response (throttle 4242);
//   - Produce to "fwd": Forward sends the same records to partition 1 instead of 0;
//   - CreateTopics: answered locally, nothing reaches the broker.
type fakeHook struct {
	mu     sync.Mutex
	begins []string
}

func (h *fakeHook) Intercepts(key int16) bool { return key == 0 || key == 19 }

func (h *fakeHook) Begin(_ context.Context, c ConnInfo, req kmsg.Request) Step {
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		h.note("create " + r.Topics[0].Topic)
		resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
		msg := "answered by hook for " + c.ClientID
		resp.Topics = []kmsg.CreateTopicsResponseTopic{{Topic: r.Topics[0].Topic, ErrorCode: 0, ErrorMessage: &msg}}
		return Step{Local: resp}
	case *kmsg.ProduceRequest:
		topic := r.Topics[0].Topic
		h.note("produce " + topic)
		switch topic {
		case "slow":
			return Step{Finish: func(ctx context.Context, resp kmsg.Response) kmsg.Response {
				select {
				case <-time.After(300 * time.Millisecond):
				case <-ctx.Done():
				}
				pr := resp.(*kmsg.ProduceResponse)
				pr.ThrottleMillis = 4242
				return pr
			}}
		case "fwd":
			cp := *r
			cp.Topics = []kmsg.ProduceRequestTopic{{Topic: "fwd", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: r.Topics[0].Partitions[0].Records}}}}
			return Step{Forward: &cp}
		}
	}
	return Step{}
}

func (h *fakeHook) note(s string) {
	h.mu.Lock()
	h.begins = append(h.begins, s)
	h.mu.Unlock()
}

func TestHookOrderLocalForward(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "slow", "fwd", "plain"))
	hook := &fakeHook{}
	p, _ := startProxy(t, c.ListenAddrs(), 1, hook)

	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 4
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "local-only", NumPartitions: 1, ReplicationFactor: 1}}
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1
	rc := dialRaw(t, p.Addr())
	// All five requests pipelined in one write: the slow Finish of #1 must hold back #2..#5.
	rc.send(
		reqFrame(produceReq("slow", 0, -1, "s1"), 1),
		reqFrame(meta, 2),
		reqFrame(produceReq("fwd", 0, -1, "f1", "f2"), 3),
		reqFrame(ct, 4),
		reqFrame(produceReq("plain", 0, 0, "acks0"), 5), // acks=0: no response
		reqFrame(produceReq("plain", 0, -1, "p1"), 6),
	)
	want := []int32{1, 2, 3, 4, 6}
	for _, corr := range want {
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		if got := int32(f[4])<<24 | int32(f[5])<<16 | int32(f[6])<<8 | int32(f[7]); got != corr {
			t.Fatalf("response order: got corr %d, want %d", got, corr)
		}
		switch corr {
		case 1:
			var r kmsg.ProduceResponse
			r.Version = 7
			if err := r.ReadFrom(f[8:]); err != nil || r.ThrottleMillis != 4242 || r.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("slow produce response %+v %v", r, err)
			}
		case 3:
			var r kmsg.ProduceResponse
			r.Version = 7
			if err := r.ReadFrom(f[8:]); err != nil || r.Topics[0].Partitions[0].Partition != 1 || r.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("forwarded produce response %+v %v", r, err)
			}
		case 4:
			var r kmsg.CreateTopicsResponse
			r.Version = 4
			if err := r.ReadFrom(f[8:]); err != nil || r.Topics[0].ErrorMessage == nil || *r.Topics[0].ErrorMessage != "answered by hook for raw-test" {
				t.Fatalf("local answer %+v %v", r, err)
			}
		}
	}
	hook.mu.Lock()
	begins := append([]string(nil), hook.begins...)
	hook.mu.Unlock()
	wantBegins := []string{"produce slow", "produce fwd", "create local-only", "produce plain", "produce plain"}
	if len(begins) != len(wantBegins) {
		t.Fatalf("begins %v", begins)
	}
	for i := range begins {
		if begins[i] != wantBegins[i] {
			t.Fatalf("begins %v, want %v", begins, wantBegins)
		}
	}

	// What the broker holds: fwd records went to partition 1 only, the locally answered topic was
	// never created, and the acks=0 record arrived.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, "fwd", "plain", "slow")
	if err != nil {
		t.Fatal(err)
	}
	check := func(topic string, part int32, want int64) {
		o, ok := ends.Lookup(topic, part)
		if !ok || o.Err != nil || o.Offset != want {
			t.Fatalf("%s/%d end offset %+v, want %d", topic, part, o, want)
		}
	}
	check("fwd", 0, 0)
	check("fwd", 1, 2)
	check("slow", 0, 1)
	check("plain", 0, 2)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("local-only") {
		t.Fatal("locally answered CreateTopics reached the broker")
	}
}

// barrierHook gives every Produce a Finish that waits until n Finishes have started, then lets
// them return in reverse order of their start, each stamping the response's throttle.
type barrierHook struct {
	n       int
	mu      sync.Mutex
	started int
	all     chan struct{}   // closed when n Finishes have started
	release []chan struct{} // release[i] lets the i-th started Finish return
}

func (h *barrierHook) Intercepts(key int16) bool { return key == 0 }

func (h *barrierHook) Begin(context.Context, ConnInfo, kmsg.Request) Step {
	return Step{Finish: func(ctx context.Context, resp kmsg.Response) kmsg.Response {
		h.mu.Lock()
		i := h.started
		h.started++
		if h.started == h.n {
			close(h.all)
		}
		h.mu.Unlock()
		select {
		case <-h.all:
		case <-time.After(10 * time.Second):
			return nil // the test reads no response and fails
		case <-ctx.Done():
			return nil
		}
		if i+1 < h.n {
			<-h.release[i+1] // the later Finish returns first
		}
		close(h.release[i])
		pr := resp.(*kmsg.ProduceResponse)
		pr.ThrottleMillis = 4242
		return pr
	}}
}

// Finishes of one connection's pipelined requests run at the same time (each waits for all the
// others to start) and responses still leave in request order, although the last Finish returns
// first.
func TestFinishesOverlapResponsesInOrder(t *testing.T) {
	const n = 4
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	hook := &barrierHook{n: n, all: make(chan struct{})}
	for range n {
		hook.release = append(hook.release, make(chan struct{}))
	}
	p, _ := startProxy(t, c.ListenAddrs(), 1, hook)
	rc := dialRaw(t, p.Addr())
	var frames [][]byte
	for i := range n {
		frames = append(frames, reqFrame(produceReq("t", 0, -1, fmt.Sprint("v", i)), int32(i+1)))
	}
	rc.send(frames...)
	for i := range n {
		f, err := rc.read()
		if err != nil {
			t.Fatalf("response %d: %v (did the Finishes overlap?)", i+1, err)
		}
		corr, r, err := produceResponse(f)
		if err != nil || corr != int32(i+1) || r.ThrottleMillis != 4242 ||
			r.Topics[0].Partitions[0].BaseOffset != int64(i) {
			t.Fatalf("response %d: corr %d, throttle %d, %+v, err %v; want corr %d, throttle 4242, base offset %d",
				i+1, corr, r.ThrottleMillis, r.Topics, err, i+1, i)
		}
	}
}

// asyncHook's FinishAsync completes Produce to "sync" before returning and Produce to "later"
// from another goroutine after 50 ms, stamping the throttle either way.
type asyncHook struct{}

func (asyncHook) Intercepts(key int16) bool { return key == 0 }

func (asyncHook) Begin(_ context.Context, _ ConnInfo, req kmsg.Request) Step {
	topic := req.(*kmsg.ProduceRequest).Topics[0].Topic
	return Step{FinishAsync: func(_ context.Context, resp kmsg.Response, done func(kmsg.Response)) {
		pr := resp.(*kmsg.ProduceResponse)
		if topic == "sync" {
			pr.ThrottleMillis = 1111
			done(pr)
			return
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			pr.ThrottleMillis = 2222
			done(pr)
		}()
	}}
}

// FinishAsync answers through done, called on the loop before returning or later from another
// goroutine; responses keep request order either way.
func TestFinishAsync(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "sync", "later"))
	p, _ := startProxy(t, c.ListenAddrs(), 1, asyncHook{})
	rc := dialRaw(t, p.Addr())
	topics := []string{"later", "sync", "later", "sync"}
	var frames [][]byte
	for i, topic := range topics {
		frames = append(frames, reqFrame(produceReq(topic, 0, -1, "v"), int32(i+1)))
	}
	rc.send(frames...)
	for i, topic := range topics {
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		corr, r, err := produceResponse(f)
		want := map[string]int32{"sync": 1111, "later": 2222}[topic]
		if err != nil || corr != int32(i+1) || r.ThrottleMillis != want || r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("response %d: corr %d throttle %d err %v %+v; want corr %d throttle %d", i+1, corr, r.ThrottleMillis, err, r.Topics, i+1, want)
		}
	}
}

// produceResponse decodes a Produce v7 response frame read by rawConn: correlation id and body.
func produceResponse(f []byte) (int32, *kmsg.ProduceResponse, error) {
	r := kmsg.NewPtrProduceResponse()
	r.Version = 7
	corr := int32(f[4])<<24 | int32(f[5])<<16 | int32(f[6])<<8 | int32(f[7])
	return corr, r, r.ReadFrom(f[8:])
}

// loopHook takes a Produce on the event loop when its first value starts with "L" (stamping
// throttle 77 through FinishAsync) or "X" (answered locally with throttle 99, not forwarded) and
// declines the rest, whose Begin then runs on a worker and is slow; every Begin of either kind
// notes the value.
type loopHook struct {
	mu           sync.Mutex
	order        []string
	workerBegins []string
}

func (h *loopHook) Intercepts(key int16) bool { return key == 0 }

func firstValue(req kmsg.Request) string {
	batches, err := protocol.DecodeBatches(req.(*kmsg.ProduceRequest).Topics[0].Partitions[0].Records, kgo.DefaultDecompressor())
	if err != nil || len(batches) == 0 || len(batches[0].Records) == 0 {
		return "?"
	}
	return string(batches[0].Records[0].Value)
}

func (h *loopHook) BeginOnLoop(_ context.Context, _ ConnInfo, req kmsg.Request) (Step, bool) {
	v := firstValue(req)
	if !strings.HasPrefix(v, "L") && !strings.HasPrefix(v, "X") {
		return Step{}, false
	}
	h.mu.Lock()
	h.order = append(h.order, v)
	h.mu.Unlock()
	if strings.HasPrefix(v, "X") { // answered on the loop, never forwarded
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		resp.ThrottleMillis = 99
		resp.Topics = []kmsg.ProduceResponseTopic{{Topic: "t", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0}}}}
		return Step{Local: resp}, true
	}
	return Step{FinishAsync: func(_ context.Context, resp kmsg.Response, done func(kmsg.Response)) {
		if pr, ok := resp.(*kmsg.ProduceResponse); ok { // nil for acks=0
			pr.ThrottleMillis = 77
		}
		done(resp)
	}}, true
}

func (h *loopHook) Begin(_ context.Context, _ ConnInfo, req kmsg.Request) Step {
	v := firstValue(req)
	time.Sleep(30 * time.Millisecond) // long enough for later requests to overtake, were they let
	h.mu.Lock()
	h.order = append(h.order, v)
	h.workerBegins = append(h.workerBegins, v)
	h.mu.Unlock()
	return Step{}
}

// Begins taken on the loop and Begins on a worker keep the connection's order: to the broker,
// to the hook and in the responses; a declined request gets exactly one (worker) Begin; a Local
// answer given on the loop is never forwarded, and an acks=0 request taken there gets no response.
func TestLoopBeginnerKeepsOrder(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	hook := &loopHook{}
	p, _ := startProxy(t, c.ListenAddrs(), 1, hook)
	rc := dialRaw(t, p.Addr())
	values := []string{"L0", "W1", "L1", "X1", "L2", "W2", "La", "L3", "W3", "L4"}
	acks0 := map[string]bool{"La": true}
	var frames [][]byte
	for i, v := range values {
		acks := int16(-1)
		if acks0[v] {
			acks = 0
		}
		frames = append(frames, reqFrame(produceReq("t", 0, acks, v), int32(i+1)))
	}
	// L0 answered: the broker connection is up. W1's Begin is then running (it sleeps) when
	// the rest arrive, which must wait for it rather than being taken on the loop at once.
	rc.send(frames[0])
	if _, err := rc.read(); err != nil {
		t.Fatal(err)
	}
	rc.send(frames[1])
	time.Sleep(10 * time.Millisecond)
	rc.send(frames[2:]...)
	for i, v := range values {
		if i == 0 || acks0[v] {
			continue
		}
		f, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		corr, r, err := produceResponse(f)
		want := map[byte]int32{'L': 77, 'X': 99, 'W': 0}[v[0]]
		if err != nil || corr != int32(i+1) || r.ThrottleMillis != want || r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("response %d (%s): corr %d throttle %d err %v; want throttle %d", i+1, v, corr, r.ThrottleMillis, err, want)
		}
	}
	hook.mu.Lock()
	order, workers := strings.Join(hook.order, ","), strings.Join(hook.workerBegins, ",")
	hook.mu.Unlock()
	if order != strings.Join(values, ",") || workers != "W1,W2,W3" {
		t.Fatalf("begin order %s, worker begins %s", order, workers)
	}
	var forwarded []string
	for _, v := range values {
		if v[0] != 'X' {
			forwarded = append(forwarded, v)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < len(forwarded) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, ",") != strings.Join(forwarded, ",") {
		t.Fatalf("broker log %v, want %v", got, forwarded)
	}
}

// An intercepted request the proxy cannot decode closes the connection, and nothing the client
// sent after it reaches the broker, not even a request the hook would take on the loop.
func TestUndecodableInterceptedRequestStopsTheConnection(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	p, _ := startProxy(t, c.ListenAddrs(), 1, &loopHook{})
	rc := dialRaw(t, p.Addr())
	// Warm up so the broker connection is up and later requests would be forwarded at once.
	rc.send(reqFrame(produceReq("t", 0, -1, "L0"), 1))
	if _, err := rc.read(); err != nil {
		t.Fatal(err)
	}
	bad := reqFrame(produceReq("t", 0, -1, "W1"), 2)
	bad = bad[:len(bad)-10] // the records end early: the header and acks parse, the body does not
	binary.BigEndian.PutUint32(bad, uint32(len(bad)-4))
	rc.send(bad, reqFrame(produceReq("t", 0, -1, "L1"), 3), reqFrame(produceReq("t", 0, 0, "L2"), 4))
	if f, err := rc.read(); err == nil {
		t.Fatalf("got a response (%d bytes) after an undecodable request; want the connection closed", len(f))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	time.Sleep(200 * time.Millisecond) // anything forwarded would have arrived by now
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("t", 0); o.Offset != 1 {
		t.Fatalf("topic end offset %d, want 1 (only the warm-up record)", o.Offset)
	}
}

// Serial runs a connection's work in the order it was given, whether inline or on its
// goroutine: a small request's work never overtakes an earlier large one's; once nothing is
// queued, inline work runs at once on the caller's goroutine.
func TestSerialKeepsOrder(t *testing.T) {
	var q Serial
	var mu sync.Mutex
	var order []int
	var inlineRuns []bool
	note := func(i int) func(bool) {
		return func(onLoop bool) {
			mu.Lock()
			order = append(order, i)
			inlineRuns = append(inlineRuns, onLoop)
			mu.Unlock()
		}
	}
	slow := func(i int) func(bool) {
		return func(onLoop bool) {
			time.Sleep(30 * time.Millisecond) // long enough for later work to overtake, were it let
			note(i)(onLoop)
		}
	}
	q.Run(false, slow(1))
	q.Run(true, note(2))
	q.Run(true, note(3))
	q.Run(false, slow(4))
	q.Run(true, note(5))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("work ran: %v", order)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		q.mu.Lock()
		idle := !q.running
		q.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ran, told := false, false
	q.Run(true, func(onLoop bool) { ran, told = true, onLoop })
	if !ran || !told {
		t.Fatalf("inline work with nothing queued: ran %v, told it runs inline %v; want both", ran, told)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range order {
		if v != i+1 {
			t.Fatalf("order %v, want 1..5", order)
		}
		if inlineRuns[i] {
			t.Fatalf("work %d ran behind queued work but was told it runs inline", v)
		}
	}
}
