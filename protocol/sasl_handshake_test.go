package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A broker advertising SaslHandshake 1–1 (kfake) is presented as 0–1 so librdkafka enables SASL;
// SaslAuthenticate keeps the broker's range.
func TestSaslHandshakeMinLowered(t *testing.T) {
	r := &kmsg.ApiVersionsResponse{Version: 3, ApiKeys: []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 17, MinVersion: 1, MaxVersion: 1},
		{ApiKey: 36, MinVersion: 0, MaxVersion: 2},
	}}
	ClampApiVersions(r)
	got := rangesOf(r)
	if got[17] != [2]int16{0, 1} || got[36] != [2]int16{0, 2} {
		t.Fatalf("got %v, want SaslHandshake 0-1 and SaslAuthenticate 0-2", got)
	}
}
