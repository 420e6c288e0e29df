package openmldbtest

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

func putResp(code int32, format string, args ...any) *apipb.PutResponse {
	return &apipb.PutResponse{Code: proto.Int32(code), Msg: proto.String(fmt.Sprintf(format, args...))}
}

// put implements TabletServer.Put, stricter than OpenMLDB: see the package comment.
func (t *tablet) put(ctx context.Context, req *apipb.PutRequest) (*apipb.PutResponse, *rpcError) {
	if servedInline(ctx) {
		// Decide once: a Put served on the reading goroutine must not sleep there.
		if t.c.faults.stalling() {
			return nil, errWouldBlock // nothing done yet: served again off the reading goroutine
		}
	} else if rerr := t.c.faults.waitStall(ctx, t.done); rerr != nil {
		return nil, rerr
	}
	if code, ok := t.c.faults.takeFailure(); ok {
		return putResp(code, "injected failure"), nil
	}
	tid, pid := req.GetTid(), req.GetPid()
	tb := t.c.tableByID(tid)
	part := t.partition(tid, pid)
	if tb == nil || part == nil {
		return putResp(codeTableNotExist, "table is not exist"), nil
	}
	n, reps := tb.placement(pid)
	if len(reps) == 0 || reps[0] != t.idx {
		return putResp(codeTableIsFollower, "table is follower"), nil
	}
	if len(req.GetDimensions()) == 0 {
		// OpenMLDB answers 0 and silently stores nothing; a client must never send this.
		return putResp(codeInvalidDimension, "put without dimensions (OpenMLDB would store nothing)"), nil
	}
	if len(req.GetTsDimensions()) > 0 {
		return putResp(codeInvalidDimension, "ts_dimensions is deprecated; the tablet derives timestamps itself"), nil
	}
	row := req.GetValue()
	var cellBuf [32]cell
	cells, err := decodeRowInto(cellBuf[:0], tb.cols, 1, row)
	if err != nil {
		return putResp(codePutFailed, "decode row for %s.%s: %v", tb.db, tb.name, err), nil
	}
	for i, col := range tb.cols {
		if col.typ == typepb.DataType_kTimestamp && !cells[i].null && cells[i].i < 0 {
			return putResp(codePutFailed, "column %q: negative timestamp %d", col.name, cells[i].i), nil
		}
	}
	var dimBuf [8]dimWrite
	dims := dimBuf[:0]
	var seenBuf [64]bool
	seen := seenBuf[:0]
	if len(tb.indexes) > len(seenBuf) {
		seen = make([]bool, len(tb.indexes))
	} else {
		seen = seenBuf[:len(tb.indexes)]
	}
	var keyBuf [128]byte
	for _, d := range req.GetDimensions() {
		idx := d.GetIdx()
		if int(idx) >= len(tb.indexes) || tb.indexes[idx].deleted {
			return putResp(codeInvalidDimension, "dimension idx %d: no such live index (table has %d)", idx, len(tb.indexes)), nil
		}
		if seen[idx] {
			return putResp(codeInvalidDimension, "dimension idx %d appears twice", idx), nil
		}
		seen[idx] = true
		ix := tb.indexes[idx]
		key := d.GetKey()
		if key == "" {
			return putResp(codeInvalidDimension, "dimension idx %d: empty key", idx), nil
		}
		if want := appendKeyText(keyBuf[:0], tb.cols, ix.keyCols, cells); key != string(want) {
			return putResp(codeInvalidDimension, "dimension idx %d (%s): key %q != %q rebuilt from the row", idx, ix.name, key, want), nil
		}
		if got := pidOf(key, n); got != pid {
			return putResp(codeInvalidDimension, "dimension idx %d: key %q hashes to pid %d of %d, request sent to pid %d", idx, key, got, n, pid), nil
		}
		dw := dimWrite{idx: int(idx), key: key}
		if ix.tsCol >= 0 {
			c := cells[ix.tsCol]
			if c.null {
				return putResp(codePutFailed, "index %s: ts column %q is NULL", ix.name, tb.cols[ix.tsCol].name), nil
			}
			if c.i < 0 {
				return putResp(codePutFailed, "index %s: ts column %q is negative (%d)", ix.name, tb.cols[ix.tsCol].name, c.i), nil
			}
			dw.ts = uint64(c.i)
		} else {
			if req.GetTime() <= 0 {
				return putResp(codePutFailed, "index %s has no ts column and the request time is %d", ix.name, req.GetTime()), nil
			}
			dw.ts = uint64(req.GetTime())
			dw.anyTS = true
		}
		dims = append(dims, dw)
	}
	return t.storeAndReplicate(tb, part, pid, dims, row, req.GetPutIfAbsent()), nil
}

// storeAndReplicate stores the row here and on every live follower while holding the table's
// placement, so a leader move or failover waits for it: a Put answered OK is on each replica that
// was live when it was taken, the next leader included. Leadership is checked again under the
// lock, because it may have moved while the row was being validated.
func (t *tablet) storeAndReplicate(tb *table, part *partition, pid uint32, dims []dimWrite, row []byte, ifAbsent bool) *apipb.PutResponse {
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	reps := tb.replicas[pid]
	if len(reps) == 0 || reps[0] != t.idx {
		return putResp(codeTableIsFollower, "table is follower")
	}
	// One Put of a partition at a time from here on, so every follower stores the partition's
	// rows in the leader's order, as OpenMLDB's followers replaying the binlog do.
	part.replMu.Lock()
	defer part.replMu.Unlock()
	if !part.put(dims, row, ifAbsent) {
		return putResp(codeOK, "exists but ignore")
	}
	// Replicate synchronously; a stopped follower misses the write, as it would in OpenMLDB.
	for _, fi := range reps[1:] {
		f := t.c.tablets[fi]
		if f.stopped.Load() {
			continue
		}
		if fp := f.partition(tb.tid, pid); fp != nil {
			fp.put(dims, row, false)
		}
	}
	return putOK
}

// putOK is the shared success answer; marshalling only reads it.
var putOK = &apipb.PutResponse{Code: proto.Int32(codeOK)}

// waitStall holds a Put while StallPuts is in effect.
func (f *faults) waitStall(ctx context.Context, done <-chan struct{}) *rpcError {
	if !f.stalling() {
		return nil
	}
	for {
		f.mu.Lock()
		until, moved := f.stallUntil, f.stallMoved
		f.mu.Unlock()
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-moved:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return &rpcError{errLogoff, "server is stopping"}
		case <-done:
			timer.Stop()
			return &rpcError{errLogoff, "server is stopping"}
		}
	}
}
