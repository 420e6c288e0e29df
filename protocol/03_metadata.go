package protocol

// Metadata (key 3), versions 0–13 (every version kmsg knows).
//
// Behaviour: requests are forwarded as bytes; every response is decoded and each broker's host
// and port is replaced by the proxy's address for that node id (node ids are kept). The rest of
// the response is re-encoded unchanged.
//
// Per-version notes: v1+ add rack, v9+ are flexible; all share the Brokers array.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(3, 0, 13) }

// RewriteMetadata rewrites the brokers of a Metadata response in place.
func RewriteMetadata(r *kmsg.MetadataResponse, m AddrMapper) bool {
	changed := false
	for i := range r.Brokers {
		b := &r.Brokers[i]
		changed = mapOne(m, b.NodeID, &b.Host, &b.Port) || changed
	}
	return changed
}
