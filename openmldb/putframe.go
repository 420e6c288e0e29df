package openmldb

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// putDim is one Dimension of a Put: the index position and its key, held in a shared key arena.
type putDim struct {
	idx, pid   uint32
	start, end int
}

// putFrame holds what appendPutFrame encodes besides the correlation id and credential.
type putFrame struct {
	tid, pid uint32
	time     int64
	value    []byte
	keys     []byte // arena the dims' keys point into
	dims     []putDim
	ifAbsent bool
}

// Field numbers of RpcMeta/RpcRequestMeta (brpc_meta.proto) and PutRequest/Dimension
// (tablet.proto) the Put fast path writes.
const (
	fMetaRequest     = 1
	fMetaCorrelation = 4
	fMetaAuth        = 7
	fReqService      = 1
	fReqMethod       = 2
	fPutTime         = 2
	fPutValue        = 3
	fPutTid          = 4
	fPutPid          = 5
	fPutDimensions   = 6
	fPutIfAbsent     = 10
	fDimKey          = 1
	fDimIdx          = 2
)

// putMethodMeta is the encoded RpcRequestMeta of TabletServer.Put, the same for every call.
var putMethodMeta = func() []byte {
	var b []byte
	b = protowire.AppendTag(b, fReqService, protowire.BytesType)
	b = protowire.AppendString(b, TabletService)
	b = protowire.AppendTag(b, fReqMethod, protowire.BytesType)
	return protowire.AppendString(b, "Put")
}()

// appendPutFrame appends a complete TabletServer.Put request frame without building protobuf
// messages. The bytes equal AppendRequestFrame's for the equivalent PutRequest (fields in
// number order, as deterministic marshalling writes them); TestPutFrameFastPath checks that.
func appendPutFrame(dst []byte, id int64, auth []byte, p *putFrame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 'P', 'R', 'P', 'C', 0, 0, 0, 0, 0, 0, 0, 0)
	dst = protowire.AppendTag(dst, fMetaRequest, protowire.BytesType)
	dst = protowire.AppendBytes(dst, putMethodMeta)
	dst = protowire.AppendTag(dst, fMetaCorrelation, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(id))
	if auth != nil {
		dst = protowire.AppendTag(dst, fMetaAuth, protowire.BytesType)
		dst = protowire.AppendBytes(dst, auth)
	}
	metaSize := len(dst) - start - frameHeaderSize
	dst = protowire.AppendTag(dst, fPutTime, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(p.time))
	dst = protowire.AppendTag(dst, fPutValue, protowire.BytesType)
	dst = protowire.AppendBytes(dst, p.value)
	dst = protowire.AppendTag(dst, fPutTid, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(p.tid))
	dst = protowire.AppendTag(dst, fPutPid, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(p.pid))
	for _, d := range p.dims {
		key := p.keys[d.start:d.end]
		dst = protowire.AppendTag(dst, fPutDimensions, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(1+protowire.SizeBytes(len(key))+1+protowire.SizeVarint(uint64(d.idx))))
		dst = protowire.AppendTag(dst, fDimKey, protowire.BytesType)
		dst = protowire.AppendBytes(dst, key)
		dst = protowire.AppendTag(dst, fDimIdx, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(d.idx))
	}
	if p.ifAbsent {
		dst = protowire.AppendTag(dst, fPutIfAbsent, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	body := len(dst) - start - frameHeaderSize
	if body > maxBodySize {
		return dst[:start], fmt.Errorf("%s.Put request of %d bytes exceeds %d", TabletService, body, maxBodySize)
	}
	binary.BigEndian.PutUint32(dst[start+4:], uint32(body))
	binary.BigEndian.PutUint32(dst[start+8:], uint32(metaSize))
	return dst, nil
}

// parsePutResponse reads PutResponse's code (field 1) and msg (field 2), skipping other fields.
func parsePutResponse(b []byte) (code int32, msg string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", fmt.Errorf("unmarshal PutResponse: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, "", fmt.Errorf("unmarshal PutResponse code: %w", protowire.ParseError(m))
			}
			code, n = int32(v), m
		case num == 2 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return 0, "", fmt.Errorf("unmarshal PutResponse msg: %w", protowire.ParseError(m))
			}
			msg, n = string(v), m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, "", fmt.Errorf("unmarshal PutResponse field %d: %w", num, protowire.ParseError(n))
			}
		}
		b = b[n:]
	}
	return code, msg, nil
}
