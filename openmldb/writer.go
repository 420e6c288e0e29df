package openmldb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
	// Validated says every row already passed t.Validate for the *Table given to Write, so
	// Write does not check the rows again before encoding them.
	Validated bool
	// Batch, for WriteAsync, leaves the first round's Puts queued on their connections for the
	// caller's Batch.Flush, so several WriteAsync calls made together leave in one socket write
	// per tablet instead of one each. The caller must flush right after its last call: the
	// queued Puts hold in-flight slots. Puts that wait for an in-flight slot, those queued on a
	// connection still being dialed (written when it is up) and retry rounds go out on their own.
	Batch *WriteBatch
	// Lane, if set, carries the Puts on the lane's own connections (see Lane). Writes of one
	// client connection that all name the same lane keep their issue order on the wire, also
	// while the lane's connection to a tablet is being set up or replaced (meanwhile Puts take
	// the shared connection, and the lane's holds what queues on it until those are over).
	Lane Lane
	// AnyTieOrder sends Puts that tie with an unanswered one on an index with a TS column (same
	// key and event time) at once instead of after its answer (see tieGate): faster for keys
	// whose rows share event times, but a tablet may then list such rows in any order.
	AnyTieOrder bool
	// OnLane says the caller runs on Lane's loop now, so the Puts are written at once; from
	// elsewhere they are written by a task the loop runs. Retry rounds always run elsewhere.
	OnLane bool
	// StoredPartitions, indexed by row (a shorter slice covers the first rows only), lists the
	// partitions an earlier Write already stored the row in (PartialWriteError.Stored). Their
	// Puts are not sent again, so retrying a partial write does not store the row twice there;
	// a row stored in all its partitions sends nothing and succeeds.
	StoredPartitions [][]uint32
}

// WriteBatch collects the connections holding Puts queued by WriteAsync calls with Batch set.
type WriteBatch struct {
	mu      sync.Mutex
	conns   []*rpcConn
	offLoop bool // some call was not on its lane's loop: lane connections are flushed by a task
}

func (b *WriteBatch) add(conns []*rpcConn, onLane bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.offLoop = b.offLoop || !onLane
	for _, rc := range conns {
		if !slices.Contains(b.conns, rc) {
			b.conns = append(b.conns, rc)
		}
	}
}

// Flush writes every Put the batch's WriteAsync calls queued. It never blocks: what a socket
// does not take is finished by a goroutine.
func (b *WriteBatch) Flush() {
	b.mu.Lock()
	conns, onLane := b.conns, !b.offLoop
	b.conns = nil
	b.mu.Unlock()
	for _, rc := range conns {
		rc.flushFrom(onLane, false)
	}
}

// ErrPartialWrite is wrapped into a row's error when some of its partitions stored it and others
// did not: the row is then readable through some indexes only. The error is a
// *PartialWriteError, which says which partitions hold the row.
var ErrPartialWrite = errors.New("row stored in some partitions only")

// PartialWriteError is a row's error when some of its partitions stored it and others did not.
// A retry passes Stored in WriteOptions.StoredPartitions, so that only the missing partitions
// are written.
type PartialWriteError struct {
	// Stored are the partitions that hold the row, in the order its Puts were built.
	Stored []uint32
	// Err is the first error of a Put that did not store it.
	Err error
}

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("%v (stored in partitions %v): %v", ErrPartialWrite, e.Stored, e.Err)
}

// Unwrap makes errors.Is find both ErrPartialWrite and the failed Put's cause.
func (e *PartialWriteError) Unwrap() []error { return []error{ErrPartialWrite, e.Err} }

// StoredPartitions returns the partitions err says already hold its row: those of a
// *PartialWriteError in err's chain, else none.
func StoredPartitions(err error) []uint32 {
	var pw *PartialWriteError
	if errors.As(err, &pw) {
		return pw.Stored
	}
	return nil
}

type putOp struct {
	row   int
	pid   uint32
	value []byte   // the row's encoding, in Write's row arena
	dims  []putDim // keys in Write's key arena
	time  int64    // Put time (ms), kept by retries (see putStamps)
	err   error
	done  bool
	// attempt is the current Put's (see putAttempt); the first in the Write's arena.
	attempt *putAttempt
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
// (bounded by Options.MaxInFlight) and issued in row order per partition, except that a Put
// tying with an unanswered one on an index with a TS column waits for it (tieGate). Follower (103),
// missing-table (100) and transport errors refresh the catalog and are retried within ctx;
// data errors are returned and never retried.
func (c *Client) Write(ctx context.Context, t *Table, rows []Row, opts WriteOptions) []error {
	ch := make(chan []error, 1)
	c.WriteAsync(ctx, t, rows, opts, func(errs []error) { ch <- errs })
	return <-ch
}

// WriteAsync is Write completing through done instead of blocking: the Puts are issued from the
// calling goroutine (one write per tablet connection for the whole batch), and done runs once
// with one result per row when every Put has completed, usually on a connection's reader
// goroutine, so it must not block. Only a write needing a retry round moves to a goroutine of
// its own. rows must not change until done runs.
func (c *Client) WriteAsync(ctx context.Context, t *Table, rows []Row, opts WriteOptions, done func([]error)) {
	if t.Unsupported != nil {
		done(fillErr(len(rows), t.Unsupported))
		return
	}
	if t.PartitionCount == 0 {
		done(fillErr(len(rows), fmt.Errorf("table %s.%s has no partitions", t.DB, t.Name)))
		return
	}
	errs := make([]error, len(rows))
	// Encode every row once into one arena; rows share it through sub-slices.
	ends := make([]int, len(rows))
	now := time.Now().UnixMilli()
	var arena []byte
	for i, r := range rows {
		start := len(arena)
		var err error
		if !opts.Validated {
			err = ValidateRow(t.Columns, t.tsCols, r)
		}
		if err == nil {
			arena, err = AppendRow(arena, t.Columns, r)
		}
		if err != nil {
			errs[i] = fmt.Errorf("row %d of %s.%s: %w", i, t.DB, t.Name, err)
			arena = arena[:start]
		}
		if i == 0 && len(rows) > 1 {
			// Rows of one batch are about the same size: grow once, not log(n) times.
			arena = slices.Grow(arena, len(arena)*(len(rows)-1)+len(arena)/2)
		}
		ends[i] = len(arena)
	}
	// One Put per (row, distinct pid), carrying that pid's dimensions.
	ops := make([]putOp, 0, len(rows))
	// Dimensions of all ops share one backing array (ops of one row are adjacent, so each op's
	// dims are a sub-slice) and their keys one arena.
	allDims := make([]putDim, 0, len(rows)*len(t.keyCols))
	var keys []byte
	prev := 0
	for i, r := range rows {
		value := arena[prev:ends[i]:ends[i]]
		prev = ends[i]
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
				ops = append(ops, putOp{row: i, pid: pid, value: value})
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
	attempts := make([]putAttempt, len(ops))
	for i := range ops {
		ops[i].attempt = &attempts[i]
	}
	pending := skipStored(ops, opts.StoredPartitions) // nil: every op
	c.stamps.stamp(t, ops, keys, now)
	w := &writeJob{c: c, ctx: ctx, t: t, errs: errs, ops: ops, keys: keys, opts: opts, done: done}
	if !opts.AnyTieOrder {
		w.ties = c.ties.entries(w, t, rows, ops, keys)
	}
	if len(ops) == 0 || (pending != nil && len(pending) == 0) {
		w.finish()
		return
	}
	w.round(1, pending, 50*time.Millisecond)
}

// skipStored marks the ops whose partition already holds their row (stored, per row) as done
// and returns the others, or nil (every op) when stored is empty.
func skipStored(ops []putOp, stored [][]uint32) []int {
	if len(stored) == 0 {
		return nil
	}
	pending := make([]int, 0, len(ops))
	for i := range ops {
		if op := &ops[i]; op.row < len(stored) && slices.Contains(stored[op.row], op.pid) {
			op.done = true
			continue
		}
		pending = append(pending, i)
	}
	return pending
}

// writeJob is one Write in progress.
type writeJob struct {
	c    *Client
	ctx  context.Context
	t    *Table
	errs []error // per row: encoding and dimension errors, then the outcome
	ops  []putOp
	keys []byte
	opts WriteOptions
	done func([]error)

	// ties are the ops' places in the client's tieGate, for tables with an index with a TS
	// column; nil otherwise. A round then issues the ops heading their tie queues at once and
	// the others as the Puts before them are over (issueWoken), and ends when all have
	// completed. A retry round gives its ops fresh places: an expired attempt keeps its own
	// until its Put is really over.
	ties     []*tieEntry
	mu       sync.Mutex
	units    int   // this round's issues (and waiting ops) not completed yet
	retryOps []int // this round's ops to retry
	endRound func(retry []int)
}

// round issues the pending ops (nil: all); what needs another round is retried after backoff on a
// goroutine of its own, after a catalog refresh.
func (w *writeJob) round(round int, pending []int, backoff time.Duration) {
	roundStart := time.Now()
	end := func(retry []int) {
		if len(retry) == 0 || w.ctx.Err() != nil || round >= maxWriteRounds {
			w.finish()
			return
		}
		go w.retry(round, roundStart, retry, backoff)
	}
	if w.ties == nil {
		w.c.issuePuts(w.ctx, w.t, w.ops, pending, w.keys, w.opts, nil, end)
		return
	}
	if pending == nil {
		pending = make([]int, len(w.ops))
		for i := range pending {
			pending[i] = i
		}
	}
	if round > 1 {
		for _, oi := range pending {
			w.ties[oi] = w.ties[oi].renewed(w)
		}
	}
	// Counted before entering: a Put answered meanwhile can wake one of these ops at once, and
	// the issue's own unit keeps the round open until the ready ones are taken off below.
	w.mu.Lock()
	w.units = 1 + len(pending)
	w.retryOps = nil
	w.endRound = end
	w.mu.Unlock()
	ready := w.c.ties.enter(w.ties, pending, make([]int, 0, len(pending)))
	if w.c.afterTieEnter != nil {
		w.c.afterTieEnter()
	}
	w.mu.Lock()
	w.units -= len(ready)
	w.mu.Unlock()
	w.c.issuePuts(w.ctx, w.t, w.ops, ready, w.keys, w.opts, w, func(retry []int) { w.issued(retry, 1) })
}

// settled takes op oi's attempt out of the tie gate once its Put is over, and sends the Puts
// that waited for it. A Put that expired is not over: its frame may still reach the tablet and
// be applied after a tying Put sent now, so it leaves when its answer comes after all or its
// connection ends (tieLate), or at the latest one RPC timeout later.
func (w *writeJob) settled(oi int, err error) {
	e := w.ties[oi]
	var expired *expiredError
	if errors.As(err, &expired) {
		w.c.ties.leaveBy(e, w.c.opts.RPCTimeout, w.c.leaveTie)
		return
	}
	w.c.leaveTie(e)
}

// leaveTie takes e out of the tie gate (again is a no-op) and sends the Puts that waited for it.
func (c *Client) leaveTie(e *tieEntry) {
	if woken := c.ties.leave(e, nil); len(woken) > 0 {
		// Not on this goroutine: it may be a connection's reader, and sending may block.
		go sendWoken(woken)
	}
}

// issueWoken sends ops of this round that waited in the tie gate.
func (w *writeJob) issueWoken(ops []int) {
	opts := w.opts
	opts.Batch = nil // nobody flushes a batch for them
	opts.OnLane = false
	w.c.issuePuts(w.ctx, w.t, w.ops, ops, w.keys, opts, w, func(retry []int) { w.issued(retry, len(ops)) })
}

// issued counts units of this round as completed, with the ops they leave to retry, and ends
// the round after the last.
func (w *writeJob) issued(retry []int, units int) {
	w.mu.Lock()
	w.retryOps = append(w.retryOps, retry...)
	w.units -= units
	last := w.units == 0
	retry, end := w.retryOps, w.endRound
	w.mu.Unlock()
	if last {
		slices.Sort(retry)
		end(retry)
	}
}

func (w *writeJob) retry(round int, roundStart time.Time, retry []int, backoff time.Duration) {
	c, ctx, t := w.c, w.ctx, w.t
	c.log.Debug("openmldb: retrying puts", "table", t.DB+"."+t.Name, "ops", len(retry), "round", round, "first_err", w.ops[retry[0]].err)
	timer := time.NewTimer(backoff)
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
	timer.Stop()
	if ctx.Err() != nil {
		w.finish()
		return
	}
	if err := c.refreshSince(ctx, roundStart); err != nil {
		c.log.Warn("openmldb: catalog refresh before retry failed", "err", err)
	}
	nt, err := c.Table(t.DB, t.Name)
	if err == nil && !sameLayout(t, nt) {
		err = fmt.Errorf("table %s.%s changed (tid %d -> %d) while writing; rows must be re-encoded", t.DB, t.Name, t.TID, nt.TID)
		for _, oi := range retry {
			w.ops[oi].err = err
		}
		w.finish()
		return
	}
	if err == nil {
		w.t = nt
	}
	w.opts.Batch = nil // nobody flushes a batch for a retry round
	w.opts.OnLane = false
	w.round(round+1, retry, min(backoff*2, time.Second))
}

// finish turns the ops' outcomes into per-row results and hands them to done.
func (w *writeJob) finish() {
	t, errs := w.t, w.errs
	// A row fails with the first error of any of its Puts; ops of one row are adjacent.
	for i := 0; i < len(w.ops); {
		row, from := w.ops[i].row, i
		stored := false
		var first error
		for ; i < len(w.ops) && w.ops[i].row == row; i++ {
			op := &w.ops[i]
			if op.done {
				stored = true
				continue
			}
			if first == nil {
				first = op.err
				if first == nil {
					first = fmt.Errorf("put %s.%s pid %d: not completed", t.DB, t.Name, op.pid)
				}
			}
		}
		switch {
		case errs[row] != nil:
		case first != nil && stored:
			pw := &PartialWriteError{Err: first}
			for _, op := range w.ops[from:i] {
				if op.done {
					pw.Stored = append(pw.Stored, op.pid)
				}
			}
			errs[row] = pw
		case first != nil:
			errs[row] = first
		}
	}
	w.done(errs)
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

// issuePuts sends the pending ops from the calling goroutine in op order, which keeps row order
// per partition on the wire (a partition's Puts all go to its leader's one connection). Frames
// are queued per connection and written together, so a batch costs one system call per tablet
// instead of one per Put; the queue is flushed before waiting for an in-flight slot. done runs
// once, when every Put has completed, with the ops to retry in op order. pending nil means
// every op.
func (c *Client) issuePuts(ctx context.Context, t *Table, ops []putOp, pending []int, keys []byte, opts WriteOptions,
	gated *writeJob, done func(retry []int)) {
	var mu sync.Mutex
	var retry []int
	var outstanding atomic.Int64
	outstanding.Store(1) // the issuer's own share, dropped when everything is issued
	complete := func() {
		if outstanding.Add(-1) == 0 {
			slices.Sort(retry)
			done(retry)
		}
	}
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
	if gated != nil {
		inner := finish
		finish = func(oi int, err error, retriable bool) {
			inner(oi, err, retriable)
			gated.settled(oi, err)
		}
	}
	// outcome classifies a Put's result: stored, a data error, or one worth another round.
	outcome := func(oi int, body []byte, err error) {
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
	}
	var queued []*rpcConn // connections holding frames not yet written
	flush := func(onLoop, wait bool) {
		for _, rc := range queued {
			rc.flushFrom(onLoop, wait)
		}
		queued = queued[:0]
	}
	var lastAddr string
	var lastConn *rpcConn // the shared connection to lastAddr
	deadline := c.pool.deadline(ctx)
	// issue sends pending[from:]. When it would have to wait for an in-flight slot it hands the
	// rest to a goroutine, so the caller never blocks past its own deadline (a connection being
	// dialed, or a full socket, queues the Puts instead).
	var issue func(from int, mayBlock bool)
	issue = func(from int, mayBlock bool) {
		onLoop := opts.OnLane && !mayBlock
		n := len(pending)
		if pending == nil {
			n = len(ops)
		}
		// The caller gave up (a Put that waited for a tie, or for an in-flight slot, is issued
		// late): send nothing more, so no row reported failed is stored afterwards.
		ctxErr := ctx.Err()
		for i := from; i < n; i++ {
			oi := i
			if pending != nil {
				oi = pending[i]
			}
			if ctxErr != nil {
				finish(oi, ctxErr, false)
				continue
			}
			op := &ops[oi]
			op.err = nil
			addr := t.Partitions[op.pid].Leader
			if addr == "" {
				finish(oi, errors.New("no alive leader"), true)
				continue
			}
			// A lane's Put takes the lane's connection, or the shared one counted as its
			// fallback (released once the Put is done or dropped).
			var rc *rpcConn
			var fallback *laneState
			if opts.Lane != nil {
				rc, fallback = c.pickLane(opts.Lane, addr)
			}
			if rc == nil {
				rc = lastConn
				if addr != lastAddr || rc == nil || rc.isDead() {
					// Never waits: a connection still being dialed queues the Put in order.
					var err error
					if rc, err = c.pool.conn(addr); err != nil {
						c.unfallback(fallback)
						finish(oi, err, retriableErr(ctx, err))
						continue
					}
				}
			}
			select {
			case c.inflight <- struct{}{}:
			default:
				flush(onLoop, mayBlock) // our own queued Puts may be what holds the slots
				if !mayBlock {
					c.unfallback(fallback)
					go issue(i, true)
					return
				}
				select {
				case c.inflight <- struct{}{}:
				case <-ctx.Done():
					c.unfallback(fallback)
					finish(oi, ctx.Err(), false)
					continue
				}
			}
			if rc.lane == nil {
				lastAddr, lastConn = addr, rc
			}
			outstanding.Add(1)
			attempt := op.attempt
			if attempt.issued {
				// An earlier attempt's late may still come, to that attempt.
				attempt = &putAttempt{}
				op.attempt = attempt
			}
			attempt.issued, attempt.c, attempt.fallback = true, c, fallback
			if gated != nil {
				attempt.tie = gated.ties[oi]
			}
			cb := func(body []byte, err error) {
				var expired *expiredError
				isExpired := err != nil && errors.As(err, &expired)
				if isExpired && retriableErr(ctx, err) {
					// The client's RPC timeout, not the caller's: the Put may still be applied,
					// so its answer after all decides it rather than a second Put. Its slot is
					// free now; its lane fallback goes with its late.
					<-c.inflight
					attempt.await(ctx, c.opts.RPCTimeout, func(body []byte, err error) {
						defer complete()
						outcome(oi, body, err)
					})
					return
				}
				// Deferred in this order so that the slot and the fallback are given back before
				// complete can end the Write: a Write issued right after must find them free.
				defer complete()
				defer func() { <-c.inflight }()
				if fallback != nil && !isExpired {
					// A Put that expired is not over: its frame may still reach the tablet, so
					// the lane waits for its late (response or connection end) instead.
					defer c.unfallback(fallback)
				}
				outcome(oi, body, err)
			}
			pf := putFrame{tid: t.TID, pid: op.pid, time: op.time, value: op.value,
				keys: keys, dims: op.dims, ifAbsent: opts.PutIfAbsent}
			id := c.pool.nextID.Add(1)
			if rc.enqueueCall(ctx, deadline, id, cb, attempt, func(dst, auth []byte) ([]byte, error) {
				return appendPutFrame(dst, id, auth, &pf)
			}) && !slices.Contains(queued, rc) {
				queued = append(queued, rc)
			}
			if rc.lane != nil {
				c.lanePuts.Add(1)
			} else {
				c.sharedPuts.Add(1)
			}
		}
		if opts.Batch != nil && !mayBlock {
			opts.Batch.add(queued, onLoop) // the caller's Flush writes them with its other calls' Puts
			queued = queued[:0]
		} else {
			flush(onLoop, mayBlock)
		}
		complete()
	}
	issue(0, false)
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
