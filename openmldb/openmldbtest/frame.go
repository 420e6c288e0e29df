package openmldbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
)

// maxBodySize is brpc's default --max_body_size.
const maxBodySize = 64 << 20

// brpc framework error codes (brpc errno.proto).
const (
	errNoService = 1001
	errNoMethod  = 1002
	errRequest   = 1003
	errRPCAuth   = 1004
	errInternal  = 2001
	errLogoff    = 2003
)

// errMalformed marks a frame that cannot be parsed; the connection is closed on it.
var errMalformed = errors.New("malformed baidu_std frame")

// frame is one parsed baidu_std message: the meta, the protobuf payload and the attachment.
type frame struct {
	meta       *brpcpb.RpcMeta
	payload    []byte
	attachment []byte
}

// readFrame reads one frame: "PRPC", body_size and meta_size (both big-endian), then the body.
func readFrame(r io.Reader, hdr []byte) (*frame, error) {
	if _, err := io.ReadFull(r, hdr[:12]); err != nil {
		return nil, err
	}
	if string(hdr[:4]) != "PRPC" {
		return nil, fmt.Errorf("%w: magic %q", errMalformed, hdr[:4])
	}
	bodySize := binary.BigEndian.Uint32(hdr[4:8])
	metaSize := binary.BigEndian.Uint32(hdr[8:12])
	if bodySize > maxBodySize {
		return nil, fmt.Errorf("%w: body_size %d above %d", errMalformed, bodySize, maxBodySize)
	}
	if metaSize > bodySize {
		return nil, fmt.Errorf("%w: meta_size %d > body_size %d", errMalformed, metaSize, bodySize)
	}
	body := make([]byte, bodySize)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return parseBody(body, int(metaSize))
}

// parseBody splits a frame body into meta, payload and attachment.
func parseBody(body []byte, metaSize int) (*frame, error) {
	meta := &brpcpb.RpcMeta{}
	if err := proto.Unmarshal(body[:metaSize], meta); err != nil {
		return nil, fmt.Errorf("%w: RpcMeta: %v", errMalformed, err)
	}
	rest := body[metaSize:]
	att := int(meta.GetAttachmentSize())
	if att < 0 || att > len(rest) {
		return nil, fmt.Errorf("%w: attachment_size %d with %d bytes after meta", errMalformed, att, len(rest))
	}
	return &frame{meta: meta, payload: rest[:len(rest)-att], attachment: rest[len(rest)-att:]}, nil
}

// parseFrame parses one complete frame held in b (used for fixed test vectors).
func parseFrame(b []byte) (*frame, error) {
	if len(b) < 12 || string(b[:4]) != "PRPC" {
		return nil, fmt.Errorf("%w: no PRPC header", errMalformed)
	}
	bodySize := binary.BigEndian.Uint32(b[4:8])
	metaSize := binary.BigEndian.Uint32(b[8:12])
	if int(bodySize) != len(b)-12 || metaSize > bodySize {
		return nil, fmt.Errorf("%w: body_size %d meta_size %d for %d bytes", errMalformed, bodySize, metaSize, len(b))
	}
	return parseBody(b[12:], int(metaSize))
}

// appendFrame appends a complete frame for meta and payload to dst.
func appendFrame(dst []byte, meta *brpcpb.RpcMeta, payload []byte) ([]byte, error) {
	m, err := proto.Marshal(meta)
	if err != nil {
		return dst, fmt.Errorf("marshal RpcMeta: %w", err)
	}
	dst = append(dst, 'P', 'R', 'P', 'C')
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m)+len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m)))
	dst = append(dst, m...)
	return append(dst, payload...), nil
}
