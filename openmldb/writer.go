package openmldb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"unsafe"
)

// OpenMLDB return codes (src/base/status.h) the writer treats specially.
const (
	CodeTableNotExist     = 100
	CodeTableExists       = 101
	CodeTableIsFollower   = 103
	CodeTableIsLoading    = 104
	CodeKeyNotFound       = 109
	CodeInvalidDimension  = 115
	CodePutFailed         = 116
	CodeNameserverNotLead = 300
	CodeDatabaseExists    = 801
	CodeDatabaseNotFound  = 802
)

// maxWriteRounds bounds retries when the context has no deadline.
const maxWriteRounds = 20

// WriteOptions tunes Write.
type WriteOptions struct {
	// PutIfAbsent sets PutRequest.put_if_absent (INSERT OR IGNORE): a byte-identical row already
	// stored under the same key is not stored again.
	PutIfAbsent bool
}

// ErrPartialWrite is wrapped into a row's error when some of its partitions stored it and others
// did not: the row is then readable through some indexes only.
var ErrPartialWrite = errors.New("row stored in some partitions only")

type putOp struct {
	row  int
	pid  uint32
	dims []putDim // keys in Write's key arena
	err  error
	done bool
}

// WriteTable is Write for a table looked up by database and name (refreshing the catalog once
// if the table is not known yet).
func (c *Client) WriteTable(ctx context.Context, db, name string, rows []Row, opts WriteOptions) []error {
	t, err := c.Table(db, name)
	if errors.Is(err, ErrTableNotFound) {
		if rerr := c.Refresh(ctx); rerr != nil {
			err = fmt.Errorf("%w (refresh: %v)", err, rerr)
		} else {
			t, err = c.Table(db, name)
		}
	}
	if err != nil {
		return fillErr(len(rows), err)
	}
	return c.Write(ctx, t, rows, opts)
}

func fillErr(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// Write stores rows into t and returns one result per row: nil means the row was stored in every
// partition its indexes hash to. Each row is encoded once; all Puts of all rows are pipelined
// (bounded by Options.MaxInFlight) and issued in row order per partition. Follower (103),
// missing-table (100) and transport errors refresh the catalog and are retried within ctx;
// data errors are returned and never retried.
func (c *Client) Write(ctx context.Context, t *Table, rows []Row, opts WriteOptions) []error {
	errs := make([]error, len(rows))
	if t.Unsupported != nil {
		return fillErr(len(rows), t.Unsupported)
	}
	if t.PartitionCount == 0 {
		return fillErr(len(rows), fmt.Errorf("table %s.%s has no partitions", t.DB, t.Name))
	}
	// Encode every row once into one arena; rows share it through sub-slices.
	ends := make([]int, len(rows))
	times := make([]int64, len(rows))
	var arena []byte
	for i, r := range rows {
		start := len(arena)
		err := ValidateRow(t.Columns, t.tsCols, r)
		if err == nil {
			arena, err = AppendRow(arena, t.Columns, r)
		}
		if err != nil {
			errs[i] = fmt.Errorf("row %d of %s.%s: %w", i, t.DB, t.Name, err)
			arena = arena[:start]
		}
		ends[i] = len(arena)
		times[i] = time.Now().UnixMilli()
	}
	values := make([][]byte, len(rows))
	prev := 0
	for i := range rows {
		if errs[i] == nil {
			values[i] = arena[prev:ends[i]:ends[i]]
		}
		prev = ends[i]
	}
	// One Put per (row, distinct pid), carrying that pid's dimensions.
	ops := make([]putOp, 0, len(rows))
	// Dimensions of all ops share one backing array (ops of one row are adjacent, so each op's
	// dims are a sub-slice) and their keys one arena.
	allDims := make([]putDim, 0, len(rows)*len(t.keyCols))
	var keys []byte
	for i, r := range rows {
		if errs[i] != nil {
			continue
		}
		first := len(ops)
		dimStart := len(allDims)
		for idx, kc := range t.keyCols {
			if kc == nil {
				continue
			}
			ks := len(keys)
			keys = AppendKey(keys, t.Columns, kc, r)
			pid := PartitionOf(unsafe.String(unsafe.SliceData(keys[ks:]), len(keys)-ks), t.PartitionCount)
			allDims = append(allDims, putDim{idx: uint32(idx), pid: pid, start: ks, end: len(keys)})
			j := first
			for ; j < len(ops) && ops[j].pid != pid; j++ {
			}
			if j == len(ops) {
				ops = append(ops, putOp{row: i, pid: pid})
			}
		}
		// Group this row's dims by op (ops in first-appearance order), keeping index order
		// within each op; each op's dims are then one sub-slice.
		rowDims := allDims[dimStart:]
		if len(ops)-first > 1 {
			grouped := make([]putDim, 0, len(rowDims))
			for j := first; j < len(ops); j++ {
				for _, d := range rowDims {
					if d.pid == ops[j].pid {
						grouped = append(grouped, d)
					}
				}
			}
			copy(rowDims, grouped)
		}
		pos := 0
		for j := first; j < len(ops); j++ {
			n := 0
			for pos+n < len(rowDims) && rowDims[pos+n].pid == ops[j].pid {
				n++
			}
			ops[j].dims = rowDims[pos : pos+n : pos+n]
			pos += n
		}
		if len(ops) == first {
			// An empty dimension list is silently accepted and stores nothing: never send it.
			errs[i] = fmt.Errorf("row %d of %s.%s: table has no live index", i, t.DB, t.Name)
		}
	}
	pending := make([]int, len(ops))
	for i := range pending {
		pending[i] = i
	}
	backoff := 50 * time.Millisecond
	for round := 1; len(pending) > 0; round++ {
		roundStart := time.Now()
		retry := c.issuePuts(ctx, t, ops, pending, values, times, keys, opts)
		if len(retry) == 0 {
			break
		}
		if ctx.Err() != nil || round >= maxWriteRounds {
			break
		}
		c.log.Debug("openmldb: retrying puts", "table", t.DB+"."+t.Name, "ops", len(retry), "round", round, "first_err", ops[retry[0]].err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
		if ctx.Err() != nil {
			break
		}
		if err := c.refreshSince(ctx, roundStart); err != nil {
			c.log.Warn("openmldb: catalog refresh before retry failed", "err", err)
		}
		nt, err := c.Table(t.DB, t.Name)
		if err == nil && !sameLayout(t, nt) {
			err = fmt.Errorf("table %s.%s changed (tid %d -> %d) while writing; rows must be re-encoded", t.DB, t.Name, t.TID, nt.TID)
			for _, oi := range retry {
				ops[oi].err = err
			}
			break
		}
		if err == nil {
			t = nt
		}
		pending = retry
	}
	// A row fails with the first error of any of its Puts.
	stored := make([]bool, len(rows))
	for i := range ops {
		op := &ops[i]
		if op.done {
			stored[op.row] = true
		} else if errs[op.row] == nil {
			errs[op.row] = op.err
			if op.err == nil {
				errs[op.row] = fmt.Errorf("put %s.%s pid %d: not completed", t.DB, t.Name, op.pid)
			}
		}
	}
	for i := range rows {
		if errs[i] != nil && stored[i] {
			errs[i] = fmt.Errorf("%w: %w", ErrPartialWrite, errs[i])
		}
	}
	return errs
}

// sameLayout reports whether rows encoded and hashed for a still fit b.
func sameLayout(a, b *Table) bool {
	if a.TID != b.TID || a.PartitionCount != b.PartitionCount || len(a.Columns) != len(b.Columns) || len(a.keyCols) != len(b.keyCols) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Type != b.Columns[i].Type || a.Columns[i].Name != b.Columns[i].Name {
			return false
		}
	}
	for i := range a.keyCols {
		if !slices.Equal(a.keyCols[i], b.keyCols[i]) {
			return false
		}
	}
	return true
}

// issuePuts sends the pending ops, one goroutine per partition issuing that partition's Puts in
// order without waiting for each to complete; it returns the ops to retry.
func (c *Client) issuePuts(ctx context.Context, t *Table, ops []putOp, pending []int, values [][]byte, times []int64, keys []byte, opts WriteOptions) []int {
	byPid := make([][]int, t.PartitionCount)
	for _, oi := range pending {
		ops[oi].err = nil
		byPid[ops[oi].pid] = append(byPid[ops[oi].pid], oi)
	}
	var mu sync.Mutex
	var retry []int
	var calls sync.WaitGroup
	finish := func(oi int, err error, retriable bool) {
		op := &ops[oi]
		if err == nil {
			op.done = true
			return
		}
		op.err = fmt.Errorf("put %s.%s pid %d: %w", t.DB, t.Name, op.pid, err)
		if retriable {
			mu.Lock()
			retry = append(retry, oi)
			mu.Unlock()
		}
	}
	var issuers sync.WaitGroup
	for pid, list := range byPid {
		if len(list) == 0 {
			continue
		}
		issuers.Add(1)
		go func(pid uint32, list []int) {
			defer issuers.Done()
			addr := t.Partitions[pid].Leader
			for _, oi := range list {
				if addr == "" {
					finish(oi, fmt.Errorf("no alive leader"), true)
					continue
				}
				select {
				case c.inflight <- struct{}{}:
				case <-ctx.Done():
					finish(oi, ctx.Err(), false)
					continue
				}
				op := &ops[oi]
				pf := putFrame{tid: t.TID, pid: pid, time: times[op.row], value: values[op.row],
					keys: keys, dims: op.dims, ifAbsent: opts.PutIfAbsent}
				calls.Add(1)
				c.pool.goFrame(ctx, addr, func(body []byte, err error) {
					defer calls.Done()
					defer func() { <-c.inflight }()
					if err != nil {
						finish(oi, err, retriableErr(ctx, err))
						return
					}
					code, msg, err := parsePutResponse(body)
					if err != nil {
						finish(oi, err, false)
						return
					}
					if code != 0 {
						finish(oi, &ServerError{Method: "Put", Code: code, Msg: msg},
							code == CodeTableIsFollower || code == CodeTableNotExist || code == CodeTableIsLoading)
						return
					}
					finish(oi, nil, false)
				}, func(dst []byte, id int64, auth []byte) ([]byte, error) {
					return appendPutFrame(dst, id, auth, &pf)
				})
			}
		}(uint32(pid), list)
	}
	issuers.Wait()
	calls.Wait()
	return retry
}

// retriableErr classifies transport-level failures: broken connections, timeouts and brpc's
// retriable framework codes are retried; the caller's own cancellation is not.
func retriableErr(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ce *ConnError
	var re *RPCError
	switch {
	case errors.As(err, &ce):
		return true
	case errors.As(err, &re):
		return re.Retriable()
	case errors.Is(err, ErrCallTimeout):
		return true
	}
	return false
}
