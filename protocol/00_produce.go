package protocol

// Produce (key 0), versions 0–12.
//
// Behaviour: requests are forwarded as the client's bytes; the proxy only peeks at acks (acks=0
// means no response will come, so no response slot is kept). A hook (the OpenMLDB tee) may decode
// the request. Responses of v10+ are decoded to rewrite the KIP-951 node_endpoints (tag 0 of the
// response: brokers the client should move to after NOT_LEADER_OR_FOLLOWER); responses without
// node_endpoints are forwarded as the broker's bytes.
//
// Per-version notes:
//   - v0–v2 have no transactional id before acks; v3+ do; v9+ are flexible (compact strings).
//   - The advertised minimum is 0 even when the broker's is higher (Kafka 4 and kfake say 3):
//     librdkafka up to at least 2.0.2 tests exact versions to decide whether the broker supports
//     compression, and silently stops compressing gzip/snappy/lz4 when Produce min > 0.
//   - The maximum is clamped to 12: v13 (Kafka 4.1) names topics by id only, and the tee routes by
//     topic name.

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(0, 0, 12)
	advertiseMin(0)
}

// ProduceAcks reads the acks field of a Produce request frame with header h without decoding the
// request.
func ProduceAcks(frame []byte, h RequestHeader) (int16, error) {
	if h.Key != 0 || h.Body < 0 {
		return 0, fmt.Errorf("%w: not a produce request (key %d)", ErrMalformed, h.Key)
	}
	off := h.Body
	if h.Version >= 3 {
		if h.Version >= 9 {
			n, w := binary.Uvarint(frame[off:])
			if w <= 0 || n > uint64(len(frame)) {
				return 0, fmt.Errorf("%w: produce transactional id length", ErrMalformed)
			}
			off += w
			if n > 0 {
				off += int(n) - 1
			}
		} else {
			if off+2 > len(frame) {
				return 0, fmt.Errorf("%w: produce request too short", ErrMalformed)
			}
			n := int(int16(binary.BigEndian.Uint16(frame[off:])))
			off += 2
			if n < -1 {
				return 0, fmt.Errorf("%w: produce transactional id length %d", ErrMalformed, n)
			}
			if n > 0 {
				off += n
			}
		}
	}
	if off < 0 || off+2 > len(frame) {
		return 0, fmt.Errorf("%w: produce request too short for acks", ErrMalformed)
	}
	return int16(binary.BigEndian.Uint16(frame[off:])), nil
}

// RewriteProduce rewrites the node_endpoints (KIP-951) of a Produce response in place.
func RewriteProduce(r *kmsg.ProduceResponse, m AddrMapper) bool {
	changed := false
	for i := range r.Brokers {
		b := &r.Brokers[i]
		changed = mapOne(m, b.NodeID, &b.Host, &b.Port) || changed
	}
	return changed
}
