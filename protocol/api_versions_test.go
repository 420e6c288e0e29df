package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfakeRanges are the ranges kfake (Kafka 4.x minimums) advertises for some keys, plus a
// proprietary key.
var kfakeRanges = []kmsg.ApiVersionsResponseApiKey{
	{ApiKey: 0, MinVersion: 3, MaxVersion: 13},
	{ApiKey: 1, MinVersion: 4, MaxVersion: 18},
	{ApiKey: 2, MinVersion: 0, MaxVersion: 10},
	{ApiKey: 3, MinVersion: 0, MaxVersion: 13},
	{ApiKey: 10, MinVersion: 0, MaxVersion: 6},
	{ApiKey: 18, MinVersion: 0, MaxVersion: 5},
	{ApiKey: 26, MinVersion: 0, MaxVersion: 5},
	{ApiKey: 60, MinVersion: 0, MaxVersion: 2},
	{ApiKey: 10001, MinVersion: 2, MaxVersion: 7},
}

func rangesOf(r *kmsg.ApiVersionsResponse) map[int16][2]int16 {
	m := map[int16][2]int16{}
	for _, k := range r.ApiKeys {
		m[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	return m
}

func TestClampApiVersions(t *testing.T) {
	r := &kmsg.ApiVersionsResponse{Version: 3, ApiKeys: append([]kmsg.ApiVersionsResponseApiKey(nil), kfakeRanges...)}
	// A future broker: Metadata 14 and FindCoordinator 7 exist, and DescribeCluster starts above
	// what the proxy parses (dropped, never advertised with max < min).
	r.ApiKeys[4].MaxVersion = 7
	r.ApiKeys[3].MaxVersion = 14
	r.ApiKeys[7] = kmsg.ApiVersionsResponseApiKey{ApiKey: 60, MinVersion: 3, MaxVersion: 4}
	ClampApiVersions(r)
	want := map[int16][2]int16{
		0:     {0, 12}, // Produce: min lowered to 0 for librdkafka, max 12 (topic names)
		1:     {4, 15}, // Fetch: broker min kept, max 15 (no node_endpoints)
		2:     {0, 10}, // ListOffsets: opaque, broker's range
		3:     {0, 13},
		10:    {0, 6},
		18:    {0, 5},
		26:    {0, 5},
		10001: {2, 7}, // proprietary key passes through
	}
	got := rangesOf(r)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("key %d: got %v, want %v", k, got[k], w)
		}
	}
}

func TestRewriteApiVersionsFrame(t *testing.T) {
	for _, v := range []int16{0, 1, 2, 3, 4, 5} {
		r := &kmsg.ApiVersionsResponse{Version: v, ApiKeys: append([]kmsg.ApiVersionsResponseApiKey(nil), kfakeRanges...), ThrottleMillis: 5}
		out, err := RewriteApiVersions(AppendResponse(nil, 9, r), v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResponse(out, 18, v)
		if err != nil {
			t.Fatal(err)
		}
		g := got.(*kmsg.ApiVersionsResponse)
		if rangesOf(g)[0] != [2]int16{0, 12} || rangesOf(g)[1] != [2]int16{4, 15} {
			t.Fatalf("v%d: %v", v, rangesOf(g))
		}
		if v >= 1 && g.ThrottleMillis != 5 {
			t.Fatalf("v%d throttle %d", v, g.ThrottleMillis)
		}
		if corr, _, _ := ParseResponseHeader(out, 18, v); corr != 9 {
			t.Fatalf("corr %d", corr)
		}
	}
}

// A broker that does not know the requested ApiVersions version answers a v0 body with error 35
// (librdkafka's mock does for v3); the proxy must read it as v0 and pass it on as v0.
func TestRewriteApiVersionsBrokerDowngrade(t *testing.T) {
	r := &kmsg.ApiVersionsResponse{Version: 0, ErrorCode: kerr.UnsupportedVersion.Code,
		ApiKeys: []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: 2}}}
	out, err := RewriteApiVersions(AppendResponse(nil, 3, r), 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(out, 18, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*kmsg.ApiVersionsResponse)
	if g.ErrorCode != 35 || rangesOf(g)[18] != [2]int16{0, 2} || len(g.ApiKeys) != 1 {
		t.Fatalf("got %+v", g)
	}
}

func TestUnsupportedApiVersions(t *testing.T) {
	if ApiVersionsTooNew(5) || !ApiVersionsTooNew(6) {
		t.Fatal("ApiVersionsTooNew bounds")
	}
	out := UnsupportedApiVersions(12)
	got, err := DecodeResponse(out, 18, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*kmsg.ApiVersionsResponse)
	if corr, _, _ := ParseResponseHeader(out, 18, 0); corr != 12 {
		t.Fatalf("corr %d", corr)
	}
	if g.ErrorCode != kerr.UnsupportedVersion.Code || len(g.ApiKeys) != 1 || rangesOf(g)[18] != [2]int16{0, 5} {
		t.Fatalf("got %+v", g)
	}
}
