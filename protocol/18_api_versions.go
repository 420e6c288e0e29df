package protocol

// ApiVersions (key 18), versions 0–5 (every version kmsg knows).
//
// Behaviour: the request is forwarded as bytes; the broker's response is decoded and clamped
// (ClampApiVersions) so that a client never picks a version the proxy cannot parse:
//   - keys with a per-key file get max = min(broker max, proxy max); the minimum stays the
//     broker's (never raised), except Produce whose minimum is advertised as 0 (see 00_produce.go);
//     a key left with no common version is dropped from the list;
//   - every other key keeps the broker's range untouched (opaque pass-through, incl. proprietary keys).
//
// Per-version notes:
//   - The response header never has tagged fields, even for flexible v3+ (so a client can read
//     the error of a downgrade answer).
//   - KIP-511: a client asking for a version above 5 gets a v0 answer with UNSUPPORTED_VERSION (35)
//     listing ApiVersions 0–5, and retries with a version from that range
//     (UnsupportedApiVersions). A broker may answer the same way (librdkafka's mock does for v3):
//     a body whose error is 35 is then a v0 body whatever the request version, and is clamped and
//     re-encoded as v0.

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

func init() { register(apiVersionsKey, 0, 5) }

// ApiVersionsTooNew reports whether an ApiVersions request of version v must be answered locally
// with UnsupportedApiVersions instead of being forwarded.
func ApiVersionsTooNew(v int16) bool {
	return v > registry[apiVersionsKey].max
}

// UnsupportedApiVersions builds the whole v0 response frame with error UNSUPPORTED_VERSION and the
// ApiVersions range the proxy parses, which tells the client which version to retry with.
func UnsupportedApiVersions(corr int32) []byte {
	r := registry[apiVersionsKey]
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: apiVersionsKey, MinVersion: r.min, MaxVersion: r.max}}
	return AppendResponse(nil, corr, resp)
}

// ClampApiVersions clamps the advertised ranges of a decoded ApiVersions response in place (see the
// file comment for the rules).
func ClampApiVersions(resp *kmsg.ApiVersionsResponse) {
	keys := resp.ApiKeys[:0]
	for _, k := range resp.ApiKeys {
		r, ok := registry[k.ApiKey]
		if ok {
			if k.MaxVersion > r.max {
				k.MaxVersion = r.max
			}
			if r.lowerMin && r.min < k.MinVersion {
				k.MinVersion = r.min
			}
			if k.MaxVersion < k.MinVersion {
				continue
			}
		}
		keys = append(keys, k)
	}
	resp.ApiKeys = keys
}

// RewriteApiVersions clamps a whole ApiVersions response frame answering a request of version
// reqVersion and returns the new frame. A broker downgrade answer (error 35) is read and written
// back as v0.
func RewriteApiVersions(frame []byte, reqVersion int16) ([]byte, error) {
	corr, body, err := ParseResponseHeader(frame, apiVersionsKey, reqVersion)
	if err != nil {
		return nil, err
	}
	if len(frame) < body+2 {
		return nil, fmt.Errorf("%w: ApiVersions response without error code", ErrMalformed)
	}
	version := reqVersion
	if int16(binary.BigEndian.Uint16(frame[body:])) == kerr.UnsupportedVersion.Code {
		version = 0
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(frame[body:]); err != nil {
		return nil, fmt.Errorf("decode ApiVersions v%d response: %w", version, err)
	}
	ClampApiVersions(resp)
	return AppendResponse(make([]byte, 0, len(frame)), corr, resp), nil
}
