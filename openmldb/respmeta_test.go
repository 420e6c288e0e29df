package openmldb

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
)

// TestParseResponseMeta checks the hand-written RpcMeta reader against protobuf's encoding of
// response metas with and without an error, an attachment and fields the reader skips.
func TestParseResponseMeta(t *testing.T) {
	for _, tc := range []struct {
		meta *brpcpb.RpcMeta
		want responseMeta
	}{
		{&brpcpb.RpcMeta{CorrelationId: proto.Int64(1 << 40)}, responseMeta{correlationID: 1 << 40}},
		{&brpcpb.RpcMeta{
			Response:           &brpcpb.RpcResponseMeta{ErrorCode: proto.Int32(ErrCodeOvercrowded), ErrorText: proto.String("overcrowded")},
			CorrelationId:      proto.Int64(7),
			AttachmentSize:     proto.Int32(12),
			CompressType:       proto.Int32(0),
			AuthenticationData: []byte("skipped"),
		}, responseMeta{correlationID: 7, attachmentSize: 12, errorCode: ErrCodeOvercrowded, errorText: "overcrowded"}},
		{&brpcpb.RpcMeta{Response: &brpcpb.RpcResponseMeta{}, CorrelationId: proto.Int64(3)}, responseMeta{correlationID: 3}},
	} {
		b, err := proto.Marshal(tc.meta)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseResponseMeta(b)
		if err != nil {
			t.Fatalf("%v: %v", tc.meta, err)
		}
		if got != tc.want {
			t.Errorf("%v: got %+v, want %+v", tc.meta, got, tc.want)
		}
	}
	if _, err := parseResponseMeta([]byte{0x22, 0x05, 0x01}); err == nil {
		t.Error("truncated meta accepted")
	}
}
