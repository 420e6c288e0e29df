package proxy

import (
	"context"
	"fmt"
	"io"
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
	c, err := p.dialUpstream(ctx, -1)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	req.Topics = []kmsg.MetadataRequestTopic{}
	frame := protocol.AppendRequest(nil, protocol.RequestHeader{CorrelationID: 1, ClientID: []byte("openmldb-kafka-proxy")}, req)
	if _, err := c.Write(frame); err != nil {
		return fmt.Errorf("discover: send metadata: %w", err)
	}
	var prefix [4]byte
	if _, err := io.ReadFull(c, prefix[:]); err != nil {
		return fmt.Errorf("discover: read metadata: %w", err)
	}
	size := protocol.FrameSize(prefix[:])
	if size < 4 || size > 64<<20 {
		return fmt.Errorf("discover: metadata response size %d", size)
	}
	resp := make([]byte, 4+int(size))
	copy(resp, prefix[:])
	if _, err := io.ReadFull(c, resp[4:]); err != nil {
		return fmt.Errorf("discover: read metadata: %w", err)
	}
	r, err := protocol.DecodeResponse(resp, 3, 1)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	protocol.RewriteAddrs(r, p.mapAddr)
	p.upstreamOK.Store(time.Now().UnixNano())
	return nil
}
