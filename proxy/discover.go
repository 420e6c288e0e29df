package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
)

// discover learns the brokers from a bootstrap broker at start, retrying a few times, so their
// listeners open before any client asks.
func (p *Proxy) discover() {
	for attempt := 0; attempt < 6; attempt++ {
		err := p.discoverOnce(p.ctx)
		if err == nil {
			return
		}
		p.log.Warn("cannot learn brokers yet (listeners open when clients fetch metadata)", "attempt", attempt+1, "err", err)
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(time.Second << attempt):
		}
	}
}

// discoverOnce sends one Metadata v1 request (no topics) and maps every broker it lists; a
// success also marks the upstream cluster as answering (Ready).
func (p *Proxy) discoverOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := p.dialOwn(ctx)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	defer c.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	req.Topics = []kmsg.MetadataRequestTopic{}
	r, err := c.roundTrip(req)
	if err != nil {
		return fmt.Errorf("discover: %w", p.hintSASL(err))
	}
	protocol.RewriteAddrs(r, p.mapAddr)
	p.upstreamOK.Store(time.Now().UnixNano())
	return nil
}
