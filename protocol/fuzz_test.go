package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func FuzzParseRequestHeader(f *testing.F) {
	id := "c"
	f.Add(clientFrame(f, &kmsg.MetadataRequest{Version: 12}, 1, &id))
	f.Add(clientFrame(f, &kmsg.ProduceRequest{Version: 9, Acks: -1}, 2, nil))
	f.Add(clientFrame(f, &kmsg.ProduceRequest{Version: 3, Acks: 0, TransactionID: &id}, 2, nil))
	f.Add(rawFrame(10001, 0, 3, "x", []byte{9}))
	f.Add([]byte{0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		// Every prefix parses to the same header as the whole frame, or asks for more bytes.
		whole, wholeErr := ParseRequestHeader(frame)
		for _, n := range []int{4, 14, len(frame) / 2, len(frame) - 1} {
			if n < 0 || n > len(frame) {
				continue
			}
			ph, err := ParseRequestHeaderPrefix(frame[:n])
			if err == nil && wholeErr == nil && (ph.Key != whole.Key || ph.CorrelationID != whole.CorrelationID || ph.Body != whole.Body) {
				t.Fatalf("prefix %d header %+v, whole %+v", n, ph, whole)
			}
		}
		h, err := ParseRequestHeader(frame)
		if err != nil {
			return
		}
		if h.Body > len(frame) || len(h.ClientID) > len(frame) {
			t.Fatalf("header %+v out of a %d-byte frame", h, len(frame))
		}
		if h.Key == 0 && h.Body >= 0 {
			_, _ = ProduceAcks(frame, h)
		}
		if h.Body >= 0 {
			if req, err := DecodeRequest(frame, h); err == nil {
				_ = AppendRequest(nil, h, req)
			}
		}
	})
}

func FuzzRewriteResponse(f *testing.F) {
	m := &kmsg.MetadataResponse{Version: 12, Brokers: []kmsg.MetadataResponseBroker{{NodeID: 1, Host: "h", Port: 1}}}
	f.Add(int16(3), int16(12), AppendResponse(nil, 1, m))
	fc := &kmsg.FindCoordinatorResponse{Version: 4, Coordinators: []kmsg.FindCoordinatorResponseCoordinator{{Key: "g", NodeID: 1, Host: "h", Port: 1}}}
	f.Add(int16(10), int16(4), AppendResponse(nil, 1, fc))
	a := &kmsg.ApiVersionsResponse{Version: 3, ApiKeys: kfakeRanges}
	f.Add(int16(18), int16(3), AppendResponse(nil, 1, a))
	p := &kmsg.ProduceResponse{Version: 10, Brokers: []kmsg.ProduceResponseBroker{{NodeID: 1, Host: "h", Port: 1}}}
	f.Add(int16(0), int16(10), AppendResponse(nil, 1, p))
	mapper := func(id int32, _ string, _ int32) (string, int32) { return "p", 1000 + id }
	f.Fuzz(func(t *testing.T, key, version int16, frame []byte) {
		if key == 18 {
			_, _ = RewriteApiVersions(frame, version)
			return
		}
		_, _ = RewriteResponse(frame, key, version, mapper)
	})
}
