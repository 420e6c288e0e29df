package protocol

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddrMapper maps a broker's advertised address to the address clients must dial instead. It is
// called for every broker address found in a response, so it also tells the caller which node ids
// exist and where they live.
type AddrMapper func(nodeID int32, host string, port int32) (string, int32)

// NeedsRewrite reports whether responses to (key, version) can carry broker addresses. Responses
// for which it is false are forwarded without being decoded.
func NeedsRewrite(key, version int16) bool {
	switch key {
	case 3, 10, 60: // Metadata, FindCoordinator, DescribeCluster
		return true
	case 0: // Produce v10+ may carry KIP-951 node_endpoints
		return version >= 10
	}
	return false
}

// RewriteAddrs rewrites every broker address of a decoded response in place and reports whether
// any changed. Responses of other keys are left alone.
func RewriteAddrs(resp kmsg.Response, m AddrMapper) bool {
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		return RewriteMetadata(r, m)
	case *kmsg.FindCoordinatorResponse:
		return RewriteFindCoordinator(r, m)
	case *kmsg.DescribeClusterResponse:
		return RewriteDescribeCluster(r, m)
	case *kmsg.ProduceResponse:
		return RewriteProduce(r, m)
	}
	return false
}

// RewriteResponse rewrites the broker addresses of a whole response frame to a request (key,
// version). It returns frame itself when nothing changed, else a new frame.
func RewriteResponse(frame []byte, key, version int16, m AddrMapper) ([]byte, error) {
	if !NeedsRewrite(key, version) {
		return frame, nil
	}
	corr, _, err := ParseResponseHeader(frame, key, version)
	if err != nil {
		return nil, err
	}
	resp, err := DecodeResponse(frame, key, version)
	if err != nil {
		return nil, fmt.Errorf("rewrite addresses: %w", err)
	}
	if !RewriteAddrs(resp, m) {
		return frame, nil
	}
	return AppendResponse(make([]byte, 0, len(frame)+64), corr, resp), nil
}

// mapOne applies m to one address and reports whether it changed.
func mapOne(m AddrMapper, id int32, host *string, port *int32) bool {
	h, p := m(id, *host, *port)
	if h == *host && p == *port {
		return false
	}
	*host, *port = h, p
	return true
}
