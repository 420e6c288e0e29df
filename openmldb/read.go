package openmldb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
)

// traversePage is the page size of Traverse; limit 0 would return everything but never
// report is_finish.
const traversePage = 1000

// ErrKeyNotFound is returned (wrapped) by Get when the key has no row (code 109).
var ErrKeyNotFound = errors.New("key not found")

// readAddr picks the replica to read pid from: the leader, else any alive follower.
func readAddr(t *Table, pid uint32) (string, error) {
	if int(pid) >= len(t.Partitions) {
		return "", fmt.Errorf("table %s.%s has no pid %d", t.DB, t.Name, pid)
	}
	p := t.Partitions[pid]
	if p.Leader != "" {
		return p.Leader, nil
	}
	if len(p.Followers) > 0 {
		return p.Followers[0], nil
	}
	return "", fmt.Errorf("table %s.%s pid %d: no alive replica", t.DB, t.Name, pid)
}

// firstIndex is the position of the first live index.
func firstIndex(t *Table) (int, error) {
	for i, idx := range t.Indexes {
		if !idx.Deleted {
			return i, nil
		}
	}
	return 0, fmt.Errorf("table %s.%s has no live index", t.DB, t.Name)
}

// Traverse calls fn with every stored row of t (encoded; the slice is only valid during the
// call), walking every partition of the first live index, so each row is seen once.
func (c *Client) Traverse(ctx context.Context, t *Table, fn func(row []byte) error) error {
	ix, err := firstIndex(t)
	if err != nil {
		return err
	}
	for pid := 0; pid < t.PartitionCount; pid++ {
		if err := c.traversePartition(ctx, t, uint32(pid), t.Indexes[ix].Name, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) traversePartition(ctx context.Context, t *Table, pid uint32, idxName string, fn func(row []byte) error) error {
	addr, err := readAddr(t, pid)
	if err != nil {
		return err
	}
	req := &apipb.TraverseRequest{
		Tid:     proto.Uint32(t.TID),
		Pid:     proto.Uint32(pid),
		IdxName: proto.String(idxName),
		Limit:   proto.Uint32(traversePage),
	}
	for {
		resp := &apipb.TraverseResponse{}
		if err := c.pool.call(ctx, addr, TabletService, "Traverse", req, resp); err != nil {
			return fmt.Errorf("traverse %s.%s pid %d: %w", t.DB, t.Name, pid, err)
		}
		if resp.GetCode() != 0 {
			return fmt.Errorf("traverse %s.%s pid %d: %w", t.DB, t.Name, pid, &ServerError{Method: "Traverse", Code: resp.GetCode(), Msg: resp.GetMsg()})
		}
		if err := eachFullRecord(resp.GetPairs(), func(_ []byte, _ uint64, row []byte) error { return fn(row) }); err != nil {
			return fmt.Errorf("traverse %s.%s pid %d: %w", t.DB, t.Name, pid, err)
		}
		if resp.GetIsFinish() {
			return nil
		}
		if resp.GetCount() == 0 && resp.Pk == nil {
			return fmt.Errorf("traverse %s.%s pid %d: unfinished page with no position", t.DB, t.Name, pid)
		}
		req.Pk = proto.String(resp.GetPk())
		req.Ts = proto.Uint64(resp.GetTs())
		req.TsPos = proto.Uint32(resp.GetTsPos())
	}
}

// eachFullRecord walks codec::EncodeFull records: [u32 n][u32 pk_len][u64 ts][pk][row], n = 8+pk+row.
func eachFullRecord(b []byte, fn func(pk []byte, ts uint64, row []byte) error) error {
	for len(b) > 0 {
		if len(b) < 16 {
			return fmt.Errorf("truncated traverse record header (%d bytes)", len(b))
		}
		n := binary.LittleEndian.Uint32(b)
		pkLen := binary.LittleEndian.Uint32(b[4:])
		ts := binary.LittleEndian.Uint64(b[8:])
		if uint64(n) < 8+uint64(pkLen) || uint64(len(b)) < 8+uint64(n) {
			return fmt.Errorf("bad traverse record: n %d pk %d in %d bytes", n, pkLen, len(b))
		}
		pk := b[16 : 16+pkLen]
		row := b[16+pkLen : 8+n]
		if err := fn(pk, ts, row); err != nil {
			return err
		}
		b = b[8+n:]
	}
	return nil
}

// eachRecord walks codec::Encode records: [u32 n][u64 ts][row], n = 8+row.
func eachRecord(b []byte, fn func(ts uint64, row []byte) error) error {
	for len(b) > 0 {
		if len(b) < 12 {
			return fmt.Errorf("truncated scan record header (%d bytes)", len(b))
		}
		n := binary.LittleEndian.Uint32(b)
		if n < 8 || uint64(len(b)) < 4+uint64(n) {
			return fmt.Errorf("bad scan record: n %d in %d bytes", n, len(b))
		}
		if err := fn(binary.LittleEndian.Uint64(b[4:]), b[12:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

func indexName(t *Table, index int) (string, error) {
	if index < 0 || index >= len(t.Indexes) || t.Indexes[index].Deleted {
		return "", fmt.Errorf("table %s.%s has no live index %d", t.DB, t.Name, index)
	}
	return t.Indexes[index].Name, nil
}

// Get returns the newest row stored under key in the index at position index, and its ts.
func (c *Client) Get(ctx context.Context, t *Table, index int, key string) (Row, uint64, error) {
	name, err := indexName(t, index)
	if err != nil {
		return nil, 0, err
	}
	pid := PartitionOf(key, t.PartitionCount)
	addr, err := readAddr(t, pid)
	if err != nil {
		return nil, 0, err
	}
	resp := &apipb.GetResponse{}
	req := &apipb.GetRequest{Tid: proto.Uint32(t.TID), Pid: proto.Uint32(pid), Key: proto.String(key), IdxName: proto.String(name)}
	if err := c.pool.call(ctx, addr, TabletService, "Get", req, resp); err != nil {
		return nil, 0, fmt.Errorf("get %s.%s key %q: %w", t.DB, t.Name, key, err)
	}
	switch resp.GetCode() {
	case 0:
	case CodeKeyNotFound:
		return nil, 0, fmt.Errorf("get %s.%s key %q: %w", t.DB, t.Name, key, ErrKeyNotFound)
	default:
		return nil, 0, fmt.Errorf("get %s.%s key %q: %w", t.DB, t.Name, key, &ServerError{Method: "Get", Code: resp.GetCode(), Msg: resp.GetMsg()})
	}
	row, err := DecodeRow(t.Columns, resp.GetValue())
	if err != nil {
		return nil, 0, fmt.Errorf("get %s.%s key %q: %w", t.DB, t.Name, key, err)
	}
	return row, resp.GetTs(), nil
}

// Scan returns every row stored under key in the index at position index, newest first
// (limit 0 = all).
func (c *Client) Scan(ctx context.Context, t *Table, index int, key string, limit uint32) ([]Row, error) {
	name, err := indexName(t, index)
	if err != nil {
		return nil, err
	}
	pid := PartitionOf(key, t.PartitionCount)
	addr, err := readAddr(t, pid)
	if err != nil {
		return nil, err
	}
	resp := &apipb.ScanResponse{}
	req := &apipb.ScanRequest{Tid: proto.Uint32(t.TID), Pid: proto.Uint32(pid), Pk: proto.String(key), IdxName: proto.String(name),
		St: proto.Uint64(0), Et: proto.Uint64(0)}
	if limit > 0 {
		req.Limit = proto.Uint32(limit)
	}
	if err := c.pool.call(ctx, addr, TabletService, "Scan", req, resp); err != nil {
		return nil, fmt.Errorf("scan %s.%s key %q: %w", t.DB, t.Name, key, err)
	}
	if resp.GetCode() != 0 {
		return nil, fmt.Errorf("scan %s.%s key %q: %w", t.DB, t.Name, key, &ServerError{Method: "Scan", Code: resp.GetCode(), Msg: resp.GetMsg()})
	}
	var rows []Row
	err = eachRecord(resp.GetPairs(), func(_ uint64, b []byte) error {
		r, err := DecodeRow(t.Columns, b)
		if err == nil {
			rows = append(rows, r)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s.%s key %q: %w", t.DB, t.Name, key, err)
	}
	return rows, nil
}

// Count returns how many rows are stored under key in the index at position index.
func (c *Client) Count(ctx context.Context, t *Table, index int, key string) (uint64, error) {
	name, err := indexName(t, index)
	if err != nil {
		return 0, err
	}
	pid := PartitionOf(key, t.PartitionCount)
	addr, err := readAddr(t, pid)
	if err != nil {
		return 0, err
	}
	resp := &apipb.CountResponse{}
	req := &apipb.CountRequest{Tid: proto.Uint32(t.TID), Pid: proto.Uint32(pid), Key: proto.String(key), IdxName: proto.String(name)}
	if err := c.pool.call(ctx, addr, TabletService, "Count", req, resp); err != nil {
		return 0, fmt.Errorf("count %s.%s key %q: %w", t.DB, t.Name, key, err)
	}
	if resp.GetCode() != 0 {
		return 0, fmt.Errorf("count %s.%s key %q: %w", t.DB, t.Name, key, &ServerError{Method: "Count", Code: resp.GetCode(), Msg: resp.GetMsg()})
	}
	return uint64(resp.GetCount()), nil
}

// IndexKey returns the key text of row for the index at position index, as the SDK builds it.
func (t *Table) IndexKey(index int, row Row) (string, error) {
	if index < 0 || index >= len(t.keyCols) || t.keyCols[index] == nil {
		return "", fmt.Errorf("table %s.%s has no live index %d", t.DB, t.Name, index)
	}
	return string(AppendKey(nil, t.Columns, t.keyCols[index], row)), nil
}
