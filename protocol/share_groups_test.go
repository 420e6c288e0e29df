package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ShareFetch and ShareAcknowledge responses carry broker addresses the proxy does not rewrite,
// so the clamp drops both keys whatever range the broker advertises, and keeps the other share
// group keys (their responses carry no addresses).
func TestShareKeysDropped(t *testing.T) {
	r := &kmsg.ApiVersionsResponse{Version: 3, ApiKeys: []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 76, MinVersion: 1, MaxVersion: 1}, // ShareGroupHeartbeat
		{ApiKey: 77, MinVersion: 1, MaxVersion: 1}, // ShareGroupDescribe
		{ApiKey: 78, MinVersion: 0, MaxVersion: 1}, // ShareFetch
		{ApiKey: 79, MinVersion: 1, MaxVersion: 1}, // ShareAcknowledge
		{ApiKey: 3, MinVersion: 0, MaxVersion: 13},
	}}
	frame := AppendResponse(nil, 7, r)
	out, err := RewriteApiVersions(frame, 3)
	if err != nil {
		t.Fatal(err)
	}
	got := kmsg.NewPtrApiVersionsResponse()
	got.Version = 3
	if err := got.ReadFrom(out[8:]); err != nil {
		t.Fatal(err)
	}
	ranges := rangesOf(got)
	for _, k := range []int16{78, 79} {
		if rg, ok := ranges[k]; ok {
			t.Errorf("key %d advertised as %v, want it dropped", k, rg)
		}
	}
	for _, k := range []int16{76, 77, 3} {
		if _, ok := ranges[k]; !ok {
			t.Errorf("key %d dropped, want it kept", k)
		}
	}
	if _, _, ok := Supported(78); !ok {
		t.Error("ShareFetch not registered")
	}
}
