package protocol

// FindCoordinator (key 10), versions 0–6.
//
// Behaviour: requests are forwarded as bytes; responses are decoded and the coordinator's address
// replaced by the proxy's for its node id.
//
// Per-version notes:
//   - v0–v3 answer one coordinator in top-level NodeID/Host/Port.
//   - v4+ batch: Coordinators[] each with its own key, node id, host, port and error.
//   - A failed lookup carries node id -1 and no address; it is left alone.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(10, 0, 6) }

// RewriteFindCoordinator rewrites the coordinator addresses of a FindCoordinator response in place.
func RewriteFindCoordinator(r *kmsg.FindCoordinatorResponse, m AddrMapper) bool {
	changed := false
	if r.Version < 4 {
		if r.NodeID >= 0 && r.ErrorCode == 0 {
			changed = mapOne(m, r.NodeID, &r.Host, &r.Port)
		}
		return changed
	}
	for i := range r.Coordinators {
		c := &r.Coordinators[i]
		if c.NodeID >= 0 && c.ErrorCode == 0 {
			changed = mapOne(m, c.NodeID, &c.Host, &c.Port) || changed
		}
	}
	return changed
}
