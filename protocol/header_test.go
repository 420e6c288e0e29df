package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// clientFrame encodes req as a client would (kmsg's own formatter), size prefix included.
func clientFrame(t testing.TB, req kmsg.Request, corr int32, clientID *string) []byte {
	t.Helper()
	var opts []kmsg.RequestFormatterOpt
	if clientID != nil {
		opts = append(opts, kmsg.FormatterClientID(*clientID))
	}
	return kmsg.NewRequestFormatter(opts...).AppendRequest(nil, req, corr)
}

func TestParseRequestHeader(t *testing.T) {
	id := "kcat-1"
	for _, tc := range []struct {
		name     string
		req      kmsg.Request
		clientID *string
		flexible bool
	}{
		{"metadata v1", &kmsg.MetadataRequest{Version: 1}, &id, false},
		{"metadata v12 flexible", &kmsg.MetadataRequest{Version: 12}, &id, true},
		{"produce v9 null client id", &kmsg.ProduceRequest{Version: 9, Acks: -1}, nil, true},
		{"api versions v3", &kmsg.ApiVersionsRequest{Version: 3, ClientSoftwareName: "x", ClientSoftwareVersion: "1"}, &id, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := clientFrame(t, tc.req, 4711, tc.clientID)
			h, err := ParseRequestHeader(frame)
			if err != nil {
				t.Fatal(err)
			}
			if h.Key != tc.req.Key() || h.Version != tc.req.GetVersion() || h.CorrelationID != 4711 {
				t.Fatalf("header %+v", h)
			}
			if tc.clientID == nil && h.ClientID != nil || tc.clientID != nil && string(h.ClientID) != *tc.clientID {
				t.Fatalf("client id %q", h.ClientID)
			}
			// The body must decode to the same request.
			got, err := DecodeRequest(frame, h)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.AppendTo(nil), tc.req.AppendTo(nil)) {
				t.Fatal("decoded body differs")
			}
			// Re-encoding with the parsed header gives back the client's exact bytes.
			if again := AppendRequest(nil, h, got); !bytes.Equal(again, frame) {
				t.Fatalf("re-encoded frame differs:\n%x\n%x", again, frame)
			}
			if f, _ := Flexible(h.Key, h.Version); f != tc.flexible {
				t.Fatalf("flexible = %v", f)
			}
		})
	}
}

func TestParseRequestHeaderUnknownKey(t *testing.T) {
	frame := rawFrame(10001, 3, 99, "cli", []byte{1, 2, 3})
	h, err := ParseRequestHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	if h.Key != 10001 || h.Version != 3 || h.CorrelationID != 99 || string(h.ClientID) != "cli" || h.Body != -1 {
		t.Fatalf("header %+v", h)
	}
}

func TestParseRequestHeaderErrors(t *testing.T) {
	good := rawFrame(3, 1, 1, "abc", []byte{0, 0, 0, 0})
	short := append([]byte(nil), good[:12]...)
	binary.BigEndian.PutUint32(short, 8)
	badLen := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(badLen[12:], 200) // client id past the end
	negLen := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(negLen[12:], 0xfffe) // -2
	sizeMismatch := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(sizeMismatch, 1000)
	negKey := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(negKey[4:], 0x8000)
	// Flexible Metadata v12 whose header tag section claims a tag longer than the frame.
	badTags := rawFrame(3, 12, 1, "", []byte{1, 0, 50})
	for name, f := range map[string][]byte{"empty": nil, "short": short, "client id past end": badLen,
		"client id -2": negLen, "size mismatch": sizeMismatch, "negative key": negKey, "bad tags": badTags} {
		if _, err := ParseRequestHeader(f); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// rawFrame builds a request frame by hand: header fields, a non-null client id, then body as is.
func rawFrame(key, version int16, corr int32, clientID string, body []byte) []byte {
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestResponseHeader(t *testing.T) {
	// Flexible Metadata response: header tags present.
	m := &kmsg.MetadataResponse{Version: 12}
	frame := AppendResponse(nil, 77, m)
	corr, body, err := ParseResponseHeader(frame, 3, 12)
	if err != nil || corr != 77 || body != 9 {
		t.Fatalf("corr %d body %d err %v", corr, body, err)
	}
	// ApiVersions v3 is flexible but its response header has no tags.
	a := &kmsg.ApiVersionsResponse{Version: 3}
	frame = AppendResponse(nil, 78, a)
	corr, body, err = ParseResponseHeader(frame, 18, 3)
	if err != nil || corr != 78 || body != 8 {
		t.Fatalf("corr %d body %d err %v", corr, body, err)
	}
}

func TestProduceAcks(t *testing.T) {
	tx := "txn-1"
	for _, v := range []int16{0, 2, 3, 7, 8, 9, 12} {
		for _, acks := range []int16{0, 1, -1} {
			for _, txid := range []*string{nil, &tx} {
				req := &kmsg.ProduceRequest{Version: v, Acks: acks, TimeoutMillis: 1000}
				if v >= 3 {
					req.TransactionID = txid
				}
				frame := clientFrame(t, req, 1, nil)
				h, err := ParseRequestHeader(frame)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ProduceAcks(frame, h)
				if err != nil || got != acks {
					t.Fatalf("v%d acks %d txid %v: got %d, %v", v, acks, txid != nil, got, err)
				}
			}
		}
	}
}

func TestParseRequestHeaderPrefix(t *testing.T) {
	id := "client-with-a-long-id"
	frame := clientFrame(t, &kmsg.ProduceRequest{Version: 9, Acks: -1, TransactionID: &id}, 5, &id)
	whole, err := ParseRequestHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= len(frame); n++ {
		h, err := ParseRequestHeaderPrefix(frame[:n])
		if n < whole.Body {
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("prefix %d: err %v, want ErrIncomplete", n, err)
			}
			continue
		}
		if err != nil || h.Body != whole.Body || string(h.ClientID) != id || h.CorrelationID != 5 {
			t.Fatalf("prefix %d: %+v %v", n, h, err)
		}
	}
}

// TestDecodeRefusesVersionsKmsgDoesNotKnow: a frame at a version beyond kmsg's is refused, not
// decoded with fields it cannot know (FuzzRewriteResponse found such a Metadata v38 frame that
// took seconds to decode).
func TestDecodeRefusesVersionsKmsgDoesNotKnow(t *testing.T) {
	m := &kmsg.MetadataResponse{Version: 12}
	frame := AppendResponse(nil, 1, m)
	if _, err := DecodeResponse(frame, 3, 12); err != nil {
		t.Fatalf("v12: %v", err)
	}
	max := kmsg.NewPtrMetadataResponse().MaxVersion()
	if _, err := DecodeResponse(frame, 3, max+1); err == nil || !strings.Contains(err.Error(), "outside 0-") {
		t.Fatalf("v%d: %v, want a version error", max+1, err)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = req.MaxVersion()
	rf := AppendRequest(nil, RequestHeader{CorrelationID: 1}, req)
	binary.BigEndian.PutUint16(rf[6:], uint16(req.MaxVersion()+1))
	h, err := ParseRequestHeader(rf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRequest(rf, h); err == nil || !strings.Contains(err.Error(), "outside 0-") {
		t.Fatalf("request above kmsg's version: %v, want a version error", err)
	}
}

// TestHugeTagCountIsRefusedAtOnce: a flexible request whose tagged-field count claims 2^28
// fields in a few bytes is refused without walking the count (kmsg before v1.15.1 looped over
// it: seconds of CPU for a 40-byte frame from any client, found by FuzzRewriteResponse on the
// response side). The bound is a hang check, thousands of times the normal cost, not a speed
// target.
func TestHugeTagCountIsRefusedAtOnce(t *testing.T) {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9 // flexible
	req.Acks = -1
	frame := AppendRequest(nil, RequestHeader{CorrelationID: 1, ClientID: []byte("c")}, req)
	if frame[len(frame)-1] != 0 {
		t.Fatalf("the body should end with an empty tag section: % x", frame[len(frame)-8:])
	}
	frame = append(frame[:len(frame)-1], 0xff, 0xff, 0xff, 0x7f)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	h, err := ParseRequestHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = DecodeRequest(frame, h)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("decoding took %s", took)
	}
	if err == nil {
		t.Fatal("a request claiming 2^28 tagged fields decoded")
	}
}
