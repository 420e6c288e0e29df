package proxy

import (
	"testing"
	"time"
)

// acks=0 Produce requests read while the broker connection is still being dialed (here a TLS
// handshake that never completes) are bounded as well: they wait in the session's own buffer.
func TestAcks0WhileTheBrokerIsDialedIsBounded(t *testing.T) {
	p, _ := startProxyOpts(t, []string{blackholeBroker(t)}, 1, Options{
		UpstreamTLS: &UpstreamTLS{}, DialTimeout: 8 * time.Second,
		Limits: Limits{MaxQueuedBytes: 4 << 20, MaxInflightPerConnection: 16, MaxOutboundPerConnection: 1 << 20}})
	written := pushAcks0(t, p)
	t.Logf("client wrote %d MiB of acks=0 Produce while the broker connection was dialed", written>>20)
	if written > 64<<20 {
		t.Fatalf("the proxy took %d MiB of acks=0 requests while dialing the broker: unbounded", written>>20)
	}
}
