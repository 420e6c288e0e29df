package openmldb

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of RpcMeta and RpcResponseMeta (brpc_meta.proto) a response is read by.
const (
	fMetaResponse       = 2
	fMetaAttachmentSize = 5
	fRespErrorCode      = 1
	fRespErrorText      = 2
)

// responseMeta is what the client needs from a response's RpcMeta.
type responseMeta struct {
	correlationID  int64
	attachmentSize int32
	errorCode      int32
	errorText      string
}

// parseResponseMeta reads a response's RpcMeta without building protobuf messages (every Put
// response passes through here); other fields are skipped. Field values follow proto2 rules:
// the last occurrence wins, and an embedded message's occurrences merge.
func parseResponseMeta(b []byte) (responseMeta, error) {
	var m responseMeta
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, fmt.Errorf("unmarshal rpc meta: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == fMetaCorrelation && typ == protowire.VarintType:
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return m, fmt.Errorf("unmarshal rpc meta correlation_id: %w", protowire.ParseError(k))
			}
			m.correlationID, n = int64(v), k
		case num == fMetaAttachmentSize && typ == protowire.VarintType:
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return m, fmt.Errorf("unmarshal rpc meta attachment_size: %w", protowire.ParseError(k))
			}
			m.attachmentSize, n = int32(v), k
		case num == fMetaResponse && typ == protowire.BytesType:
			v, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return m, fmt.Errorf("unmarshal rpc meta response: %w", protowire.ParseError(k))
			}
			if err := m.parseResponse(v); err != nil {
				return m, err
			}
			n = k
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return m, fmt.Errorf("unmarshal rpc meta field %d: %w", num, protowire.ParseError(n))
			}
		}
		b = b[n:]
	}
	return m, nil
}

// parseResponse reads RpcResponseMeta's error_code and error_text.
func (m *responseMeta) parseResponse(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("unmarshal rpc response meta: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == fRespErrorCode && typ == protowire.VarintType:
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return fmt.Errorf("unmarshal rpc response meta error_code: %w", protowire.ParseError(k))
			}
			m.errorCode, n = int32(v), k
		case num == fRespErrorText && typ == protowire.BytesType:
			v, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return fmt.Errorf("unmarshal rpc response meta error_text: %w", protowire.ParseError(k))
			}
			m.errorText, n = string(v), k
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("unmarshal rpc response meta field %d: %w", num, protowire.ParseError(n))
			}
		}
		b = b[n:]
	}
	return nil
}
