package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrMalformed is wrapped by every header parsing error.
var ErrMalformed = errors.New("malformed kafka frame")

// RequestHeader is the parsed header of a request frame. A frame here is always the whole frame:
// the int32 size prefix followed by size bytes.
//
// Layout: size int32 | key int16 | version int16 | correlation id int32 | client id nullable
// string (int16 length, also in flexible versions) | tagged fields (flexible versions) | body.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	// ClientID aliases the frame; nil when the client sent a null client id.
	ClientID []byte
	// Body is the offset of the request body in the frame, or -1 when the key is unknown to kmsg, so
	// whether header tags follow the client id cannot be told. Opaque forwarding does not need it.
	Body int
}

// FrameSize returns the payload length announced by a frame's 4-byte size prefix.
func FrameSize(prefix []byte) int32 {
	return int32(binary.BigEndian.Uint32(prefix))
}

// ParseRequestHeader parses the header of one complete request frame. It never panics and does
// not allocate; ClientID aliases frame.
func ParseRequestHeader(frame []byte) (RequestHeader, error) {
	var h RequestHeader
	if len(frame) < 4 {
		return h, fmt.Errorf("%w: %d bytes, need a 4-byte size", ErrMalformed, len(frame))
	}
	if size := FrameSize(frame); size < 0 || int(size) != len(frame)-4 {
		return h, fmt.Errorf("%w: size prefix %d for %d payload bytes", ErrMalformed, size, len(frame)-4)
	}
	return parseHeader(frame)
}

// ErrIncomplete is returned by ParseRequestHeaderPrefix when more bytes are needed.
var ErrIncomplete = errors.New("kafka request header incomplete")

// ParseRequestHeaderPrefix parses the header from the first bytes of a request frame (size
// prefix included), so a large request can be forwarded while it is still arriving. It returns
// ErrIncomplete when b ends before the header does; when b holds the whole frame it is
// ParseRequestHeader.
func ParseRequestHeaderPrefix(b []byte) (RequestHeader, error) {
	if len(b) < 4 {
		return RequestHeader{}, ErrIncomplete
	}
	size := FrameSize(b)
	if size < 0 {
		return RequestHeader{}, fmt.Errorf("%w: size prefix %d", ErrMalformed, size)
	}
	if total := 4 + int(size); len(b) >= total {
		return ParseRequestHeader(b[:total])
	}
	h, err := parseHeader(b)
	if err != nil {
		// The missing bytes may complete the header; a frame that is malformed is rejected by
		// ParseRequestHeader once it is whole.
		return h, ErrIncomplete
	}
	return h, nil
}

// parseHeader parses the header fields from frame, which may be a prefix of the whole frame.
func parseHeader(frame []byte) (RequestHeader, error) {
	var h RequestHeader
	if len(frame) < 14 {
		return h, fmt.Errorf("%w: request header needs 14 bytes, frame has %d", ErrMalformed, len(frame))
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[4:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[6:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[8:]))
	if h.Key < 0 || h.Version < 0 {
		return h, fmt.Errorf("%w: negative api key %d or version %d", ErrMalformed, h.Key, h.Version)
	}
	n := int(int16(binary.BigEndian.Uint16(frame[12:])))
	off := 14
	switch {
	case n == -1:
	case n < -1:
		return h, fmt.Errorf("%w: client id length %d", ErrMalformed, n)
	case off+n > len(frame):
		return h, fmt.Errorf("%w: client id length %d past the frame end", ErrMalformed, n)
	default:
		h.ClientID = frame[off : off+n : off+n]
		off += n
	}
	flexible, known := Flexible(h.Key, h.Version)
	if !known {
		h.Body = -1
		return h, nil
	}
	if flexible {
		end, err := skipTags(frame, off)
		if err != nil {
			return h, fmt.Errorf("request header tags of %s v%d: %w", kmsg.NameForKey(h.Key), h.Version, err)
		}
		off = end
	}
	h.Body = off
	return h, nil
}

// skipTags skips a tagged-field section starting at off and returns the offset after it.
func skipTags(b []byte, off int) (int, error) {
	n, w := binary.Uvarint(b[off:])
	if w <= 0 || n > uint64(len(b)) {
		return 0, fmt.Errorf("%w: bad tag count", ErrMalformed)
	}
	off += w
	for i := uint64(0); i < n; i++ {
		_, w = binary.Uvarint(b[off:])
		if w <= 0 {
			return 0, fmt.Errorf("%w: bad tag key", ErrMalformed)
		}
		off += w
		size, w := binary.Uvarint(b[off:])
		if w <= 0 || size > uint64(len(b)-off-w) {
			return 0, fmt.Errorf("%w: bad tag size", ErrMalformed)
		}
		off += w + int(size)
	}
	return off, nil
}

// ResponseFlexible reports whether the response header of (key, version) carries tagged fields.
// ApiVersions responses never do (so a client can always read the error of a downgrade answer).
func ResponseFlexible(key, version int16) bool {
	if key == 18 {
		return false
	}
	f, _ := Flexible(key, version)
	return f
}

// ParseResponseHeader parses the header of one complete response frame of a request (key,
// version) and returns the correlation id and the offset of the body in frame.
func ParseResponseHeader(frame []byte, key, version int16) (corr int32, body int, err error) {
	if len(frame) < 8 {
		return 0, 0, fmt.Errorf("%w: response frame of %d bytes", ErrMalformed, len(frame))
	}
	if size := FrameSize(frame); size < 0 || int(size) != len(frame)-4 {
		return 0, 0, fmt.Errorf("%w: size prefix %d for %d payload bytes", ErrMalformed, size, len(frame)-4)
	}
	corr = int32(binary.BigEndian.Uint32(frame[4:]))
	body = 8
	if ResponseFlexible(key, version) {
		if body, err = skipTags(frame, body); err != nil {
			return corr, 0, fmt.Errorf("response header tags of %s v%d: %w", kmsg.NameForKey(key), version, err)
		}
	}
	return corr, body, nil
}

// DecodeRequest decodes the body of a request frame whose header is h.
func DecodeRequest(frame []byte, h RequestHeader) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil || h.Body < 0 {
		return nil, fmt.Errorf("decode request: unknown api key %d", h.Key)
	}
	if max := req.MaxVersion(); h.Version < 0 || h.Version > max {
		return nil, fmt.Errorf("decode %s request: version %d outside 0-%d", kmsg.NameForKey(h.Key), h.Version, max)
	}
	req.SetVersion(h.Version)
	if err := req.ReadFrom(frame[h.Body:]); err != nil {
		return nil, fmt.Errorf("decode %s v%d request: %w", kmsg.NameForKey(h.Key), h.Version, err)
	}
	return req, nil
}

// DecodeResponse decodes a response frame of a request (key, version).
func DecodeResponse(frame []byte, key, version int16) (kmsg.Response, error) {
	_, body, err := ParseResponseHeader(frame, key, version)
	if err != nil {
		return nil, err
	}
	resp := kmsg.ResponseForKey(key)
	if resp == nil {
		return nil, fmt.Errorf("decode response: unknown api key %d", key)
	}
	// Versions beyond what kmsg knows have fields it cannot know; decoding them anyway can also
	// take seconds on a malformed frame (found by FuzzRewriteResponse). Clients are never offered
	// such versions (ApiVersions is clamped to the registry).
	if max := resp.MaxVersion(); version < 0 || version > max {
		return nil, fmt.Errorf("decode %s response: version %d outside 0-%d", kmsg.NameForKey(key), version, max)
	}
	resp.SetVersion(version)
	if err := resp.ReadFrom(frame[body:]); err != nil {
		return nil, fmt.Errorf("decode %s v%d response: %w", kmsg.NameForKey(key), version, err)
	}
	return resp, nil
}

// AppendResponse appends a whole response frame (size, correlation id, header tags when
// flexible, body) for resp, whose version must be the request's.
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if ResponseFlexible(resp.Key(), resp.GetVersion()) {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// AppendRequest appends a whole request frame for req, with the correlation id and client id of h
// and req's own version.
func AppendRequest(dst []byte, h RequestHeader, req kmsg.Request) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.CorrelationID))
	if h.ClientID == nil {
		dst = binary.BigEndian.AppendUint16(dst, 0xffff)
	} else {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.ClientID)))
		dst = append(dst, h.ClientID...)
	}
	if req.IsFlexible() {
		dst = append(dst, 0)
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
