package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
)

// ownClientID is the client id of the requests the proxy sends on its own connections.
var ownClientID = []byte("openmldb-kafka-proxy")

// ownConnTimeout bounds an exchange on the proxy's own connections whose context has no deadline.
const ownConnTimeout = 10 * time.Second

// maxOwnResponse bounds a response on the proxy's own connections; Metadata of a large cluster
// stays far below it.
const maxOwnResponse = 64 << 20

// ownConn is a connection the proxy opened to a broker for itself (discovery and the readiness
// probe), as opposed to a client's forwarded connection. Requests go one at a time.
type ownConn struct {
	net.Conn
	addr string // the broker's address, for errors and SASL
	corr int32
}

// roundTrip sends req (its version set) and decodes the response.
func (c *ownConn) roundTrip(req kmsg.Request) (kmsg.Response, error) {
	name := kmsg.NameForKey(req.Key())
	c.corr++
	frame := protocol.AppendRequest(nil, protocol.RequestHeader{CorrelationID: c.corr, ClientID: ownClientID}, req)
	if _, err := c.Write(frame); err != nil {
		return nil, fmt.Errorf("send %s to %s: %w", name, c.addr, err)
	}
	var prefix [4]byte
	if _, err := io.ReadFull(c, prefix[:]); err != nil {
		return nil, fmt.Errorf("read %s response from %s: %w", name, c.addr, err)
	}
	size := protocol.FrameSize(prefix[:])
	if size < 4 || size > maxOwnResponse {
		return nil, fmt.Errorf("%s response from %s: frame size %d", name, c.addr, size)
	}
	resp := make([]byte, 4+int(size))
	copy(resp, prefix[:])
	if _, err := io.ReadFull(c, resp[4:]); err != nil {
		return nil, fmt.Errorf("read %s response from %s: %w", name, c.addr, err)
	}
	corr, _, err := protocol.ParseResponseHeader(resp, req.Key(), req.GetVersion())
	if err != nil {
		return nil, fmt.Errorf("%s response from %s: %w", name, c.addr, err)
	}
	if corr != c.corr {
		return nil, fmt.Errorf("%s response from %s: correlation id %d, sent %d", name, c.addr, corr, c.corr)
	}
	r, err := protocol.DecodeResponse(resp, req.Key(), req.GetVersion())
	if err != nil {
		return nil, fmt.Errorf("%s response from %s: %w", name, c.addr, err)
	}
	return r, nil
}

// authenticate runs SASL with mech (kafka.sasl): SaslHandshake v1, then SaslAuthenticate until
// the mechanism's session is done. The exchange follows KIP-152: every SaslAuthenticate request
// has a response, also the one carrying a mechanism's final message.
func (c *ownConn) authenticate(ctx context.Context, mech sasl.Mechanism) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = mech.Name()
	r, err := c.roundTrip(hs)
	if err != nil {
		return fmt.Errorf("sasl: %w", err)
	}
	if hr := r.(*kmsg.SASLHandshakeResponse); hr.ErrorCode != 0 {
		err := kerr.ErrorForCode(hr.ErrorCode)
		switch {
		case errors.Is(err, kerr.UnsupportedSaslMechanism):
			return fmt.Errorf("sasl: broker %s does not enable mechanism %s (it offers %v); set kafka.sasl.mechanism to one of those: %w", c.addr, mech.Name(), hr.SupportedMechanisms, err)
		case errors.Is(err, kerr.IllegalSaslState):
			// What Kafka answers on a listener without SASL.
			return fmt.Errorf("sasl: broker %s's listener does not use SASL; unset kafka.sasl.* or point kafka.bootstrap at a SASL_PLAINTEXT or SASL_SSL listener: %w", c.addr, err)
		default:
			return fmt.Errorf("sasl: broker %s refused the SASL handshake for %s: %w", c.addr, mech.Name(), err)
		}
	}
	session, msg, err := mech.Authenticate(ctx, c.addr)
	if err != nil {
		return fmt.Errorf("sasl %s: %w", mech.Name(), err)
	}
	for done := false; !done || len(msg) > 0; {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version = 1
		req.SASLAuthBytes = msg
		r, err := c.roundTrip(req)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				// Some brokers answer failed authentication by closing the connection.
				return fmt.Errorf("sasl %s: %w (closed during authentication: check kafka.sasl.username, kafka.sasl.password and kafka.sasl.mechanism)", mech.Name(), err)
			}
			return fmt.Errorf("sasl %s: %w", mech.Name(), err)
		}
		ar := r.(*kmsg.SASLAuthenticateResponse)
		if ar.ErrorCode != 0 {
			detail := ""
			if ar.ErrorMessage != nil {
				detail = ": " + *ar.ErrorMessage
			}
			return fmt.Errorf("sasl %s as the kafka.sasl user, broker %s%s: %w", mech.Name(), c.addr, detail, kerr.ErrorForCode(ar.ErrorCode))
		}
		msg = nil
		if !done {
			if done, msg, err = session.Challenge(ar.SASLAuthBytes); err != nil {
				return fmt.Errorf("sasl %s with broker %s: %w", mech.Name(), c.addr, err)
			}
		}
	}
	return nil
}

// dialOwn opens a connection of the proxy's own to a bootstrap broker, authenticated when
// kafka.sasl is set. A connection closed before answering is the usual sign of brokers that
// require SASL from every client, so that error says so when no credentials are configured.
func (p *Proxy) dialOwn(ctx context.Context) (*ownConn, error) {
	nc, addr, err := p.dialUpstream(ctx, -1)
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(ownConnTimeout)
	}
	_ = nc.SetDeadline(dl)
	c := &ownConn{Conn: nc, addr: addr}
	if p.opts.UpstreamSASL != nil {
		if err := c.authenticate(ctx, p.opts.UpstreamSASL); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// hintSASL adds the likely cause to err when a broker closed an unauthenticated connection.
func (p *Proxy) hintSASL(err error) error {
	if p.opts.UpstreamSASL == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return fmt.Errorf("%w (the broker closed the connection: if it requires SASL from every client, set kafka.sasl.* for the proxy's own connections)", err)
	}
	return err
}
