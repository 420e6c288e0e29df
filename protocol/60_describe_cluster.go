package protocol

// DescribeCluster (key 60), versions 0–2.
//
// Behaviour: requests are forwarded as bytes; responses are decoded and each broker's address
// replaced by the proxy's for its node id. v2 adds is_fenced; all versions are flexible.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(60, 0, 2) }

// RewriteDescribeCluster rewrites the brokers of a DescribeCluster response in place.
func RewriteDescribeCluster(r *kmsg.DescribeClusterResponse, m AddrMapper) bool {
	changed := false
	for i := range r.Brokers {
		b := &r.Brokers[i]
		changed = mapOne(m, b.NodeID, &b.Host, &b.Port) || changed
	}
	return changed
}
