package openmldbtest

import (
	"bufio"
	"bytes"
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
	bodySize, metaSize, err := checkHeader(hdr)
	if err != nil {
		return nil, err
	}
	body := make([]byte, bodySize)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return parseBody(body, metaSize)
}

// checkHeader validates a frame header and returns body_size and meta_size.
func checkHeader(hdr []byte) (int, int, error) {
	if string(hdr[:4]) != "PRPC" {
		return 0, 0, fmt.Errorf("%w: magic %q", errMalformed, hdr[:4])
	}
	bodySize := binary.BigEndian.Uint32(hdr[4:8])
	metaSize := binary.BigEndian.Uint32(hdr[8:12])
	if bodySize > maxBodySize {
		return 0, 0, fmt.Errorf("%w: body_size %d above %d", errMalformed, bodySize, maxBodySize)
	}
	if metaSize > bodySize {
		return 0, 0, fmt.Errorf("%w: meta_size %d > body_size %d", errMalformed, metaSize, bodySize)
	}
	return int(bodySize), int(metaSize), nil
}

// parseBody splits a frame body into meta, payload and attachment.
func parseBody(body []byte, metaSize int) (*frame, error) {
	f := &frame{}
	if err := splitBody(f, &brpcpb.RpcMeta{}, body, metaSize); err != nil {
		return nil, err
	}
	return f, nil
}

// splitBody fills f from body, unmarshalling the meta into meta.
func splitBody(f *frame, meta *brpcpb.RpcMeta, body []byte, metaSize int) error {
	if err := proto.Unmarshal(body[:metaSize], meta); err != nil {
		return fmt.Errorf("%w: RpcMeta: %v", errMalformed, err)
	}
	rest := body[metaSize:]
	att := int(meta.GetAttachmentSize())
	if att < 0 || att > len(rest) {
		return fmt.Errorf("%w: attachment_size %d with %d bytes after meta", errMalformed, att, len(rest))
	}
	*f = frame{meta: meta, payload: rest[:len(rest)-att], attachment: rest[len(rest)-att:]}
	return nil
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

// frameReader reads frames from a buffered connection into a reused body buffer and meta: the
// frame it returns is valid until the next call.
type frameReader struct {
	r    *bufio.Reader
	hdr  [12]byte
	body []byte
	f    frame
	meta brpcpb.RpcMeta
}

// complete reports whether a whole frame is already buffered, so next will not block.
func (fr *frameReader) complete() bool {
	n := fr.r.Buffered()
	if n < 12 {
		return false
	}
	h, err := fr.r.Peek(12)
	if err != nil {
		return false
	}
	return n-12 >= int(binary.BigEndian.Uint32(h[4:8]))
}

// next reads one frame: "PRPC", body_size and meta_size (both big-endian), then the body.
func (fr *frameReader) next() (*frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	bodySize, metaSize, err := checkHeader(fr.hdr[:])
	if err != nil {
		return nil, err
	}
	if cap(fr.body) < bodySize || cap(fr.body) > 1<<20 {
		fr.body = make([]byte, bodySize)
	}
	fr.body = fr.body[:bodySize]
	if _, err := io.ReadFull(fr.r, fr.body); err != nil {
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	if err := splitBody(&fr.f, &fr.meta, fr.body, metaSize); err != nil {
		return nil, err
	}
	return &fr.f, nil
}

// clone copies a frame out of a frameReader's reused buffers.
func (f *frame) clone() *frame {
	return &frame{
		meta:       proto.Clone(f.meta).(*brpcpb.RpcMeta),
		payload:    bytes.Clone(f.payload),
		attachment: bytes.Clone(f.attachment),
	}
}

// appendFrameMsg appends a complete frame for meta and a message (nil: empty body) to dst,
// marshalling both in place.
func appendFrameMsg(dst []byte, meta *brpcpb.RpcMeta, msg proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 'P', 'R', 'P', 'C', 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst, meta); err != nil {
		return dst[:start], fmt.Errorf("marshal RpcMeta: %w", err)
	}
	metaEnd := len(dst)
	if msg != nil {
		if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst, msg); err != nil {
			return dst[:start], fmt.Errorf("marshal %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
		}
	}
	binary.BigEndian.PutUint32(dst[start+4:], uint32(len(dst)-start-12))
	binary.BigEndian.PutUint32(dst[start+8:], uint32(metaEnd-start-12))
	return dst, nil
}
