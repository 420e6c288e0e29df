package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RawRequest sends one request, at exactly the version set on req, over a fresh connection to addr
// and returns the decoded response. Clients negotiate versions themselves; this pins one so a test
// can check what the proxy returns for a specific version.
func RawRequest(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("deadline on %s: %w", addr, err)
	}
	const corr = 7
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("okp-e2e")).AppendRequest(nil, req, corr)
	if _, err := conn.Write(frame); err != nil {
		return nil, fmt.Errorf("write key %d v%d to %s: %w", req.Key(), req.GetVersion(), addr, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, fmt.Errorf("read key %d v%d response size from %s: %w", req.Key(), req.GetVersion(), addr, err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("key %d v%d response from %s: bad size %d", req.Key(), req.GetVersion(), addr, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, fmt.Errorf("read key %d v%d response from %s: %w", req.Key(), req.GetVersion(), addr, err)
	}
	r := kbin.Reader{Src: body}
	if got := r.Int32(); got != corr {
		return nil, fmt.Errorf("key %d v%d response from %s: correlation id %d, want %d", req.Key(), req.GetVersion(), addr, got, corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// ApiVersions responses never carry header tags, even when flexible.
	if resp.IsFlexible() && req.Key() != 18 {
		kmsg.SkipTags(&r)
	}
	if err := resp.ReadFrom(r.Src); err != nil {
		return nil, fmt.Errorf("decode key %d v%d response from %s: %w", req.Key(), req.GetVersion(), addr, err)
	}
	return resp, nil
}

// Batches splits the record-batch bytes of a fetch partition into batches (headers plus the raw,
// possibly compressed, records). A trailing partial batch, which brokers may return, is ignored.
func Batches(raw []byte) ([]kmsg.RecordBatch, error) {
	var out []kmsg.RecordBatch
	for len(raw) >= 12 {
		n := 12 + int(int32(binary.BigEndian.Uint32(raw[8:12])))
		if n < 12+49 || n > len(raw) {
			break
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw[:n]); err != nil {
			return nil, fmt.Errorf("decode record batch at offset %d: %w", b.FirstOffset, err)
		}
		out = append(out, b)
		raw = raw[n:]
	}
	return out, nil
}

// StoredBatches fetches partition p of topic straight from broker addr (the partition leader)
// with Fetch v11, which names topics, and returns the batches exactly as the broker stored them.
func StoredBatches(ctx context.Context, addr, topic string, p int32) ([]kmsg.RecordBatch, error) {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MaxBytes = 64 << 20
	req.IsolationLevel = 0
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = p
	rp.FetchOffset = 0
	rp.PartitionMaxBytes = 64 << 20
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := RawRequest(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	fr := resp.(*kmsg.FetchResponse)
	if fr.ErrorCode != 0 {
		return nil, fmt.Errorf("fetch %s/%d from %s: error code %d", topic, p, addr, fr.ErrorCode)
	}
	for _, t := range fr.Topics {
		for _, part := range t.Partitions {
			if part.ErrorCode != 0 {
				return nil, fmt.Errorf("fetch %s/%d from %s: partition error code %d", topic, p, addr, part.ErrorCode)
			}
			return Batches(part.RecordBatches)
		}
	}
	return nil, fmt.Errorf("fetch %s/%d from %s: no partition in response", topic, p, addr)
}
