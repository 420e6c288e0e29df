package tee

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// storeJob is one partition the broker accepted, with its answer to mark on failure (nil for
// acks=0).
type storeJob struct {
	plan *partitionPlan
	part *kmsg.ProduceResponseTopicPartition
}

// maxRowsOnLoop is the most rows a Produce Finish encodes and issues on the proxy's event loop;
// bigger requests do it on the connection's proxy.Serial goroutine.
const maxRowsOnLoop = 64

// finishProduce writes the rows of every partition the broker accepted, marking partitions whose
// rows did not all reach OpenMLDB before the deadline with a retriable error, then calls done
// (exactly once, from whichever goroutine finishes last, or from this one). It never blocks: it
// runs on the proxy's event loop (or, for large requests, the connection's proxy.Serial
// goroutine). The writes start from here and complete through callbacks;
// only a partition whose start would block (a dead-letter produce, or an earlier attempt at the
// same batch still writing) gets a goroutine of its own, so it cannot hold the others back.
func (t *Tee) finishProduce(ctx context.Context, c proxy.ConnInfo, plans []*partitionPlan, resp *kmsg.ProduceResponse, deadline time.Time, r route, done func()) {
	var jobs []storeJob
	for _, p := range plans {
		if p.reject {
			continue
		}
		var part *kmsg.ProduceResponseTopicPartition
		if resp != nil {
			part = findPartition(resp, p.topic, p.partition)
			if part == nil || part.ErrorCode != 0 {
				continue // the broker refused it; the client retries and the rows come again
			}
		}
		jobs = append(jobs, storeJob{p, part})
	}
	f := &finishing{t: t, c: c, jobs: jobs, writes: make([]*rowWrite, len(jobs)), open: make([]bool, len(jobs)),
		kept: make([]func(), len(jobs)), left: len(jobs) + 1, done: done}
	for i := range f.open {
		f.open[i] = true
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	f.cancel = cancel
	// The partitions' Puts leave together: one socket write per tablet for the whole request.
	batch := &openmldb.WriteBatch{}
	for i, j := range jobs {
		w, msg, started := t.startStore(ctx, j.plan, j.part, false, batch, r, func(o writeOutcome, w *rowWrite) {
			f.end(i, w.message(o))
		}, nil)
		switch {
		case !started:
			// It waits (for its dead-letter produce, or an earlier attempt at the batch): the
			// deadline timer answers for it if it is not through in time.
			f.timed = true
			go f.startWaiting(ctx, i, r.offLoop())
		case w == nil:
			f.end(i, msg)
		default:
			f.mu.Lock()
			f.writes[i] = w
			f.mu.Unlock()
			f.timed = true
		}
	}
	batch.Flush()
	if f.timed {
		// Writes still out at the deadline are reported as such; they keep running (the ledger
		// learns their outcome), but the client hears now, while its request is still waited for.
		f.timer = time.AfterFunc(time.Until(deadline), f.expire)
	}
	f.end(-1, "")
}

// route says which connections a write's Puts take: those of the client connection's event
// loop (proxy.Loop as an openmldb.Lane), so that the loop reads their responses itself, and
// whether the caller runs on that loop now (its Puts are then written at once). Every write of
// a client connection names its loop, so the connection's Puts keep their order on the wire.
type route struct {
	lane   openmldb.Lane
	onLoop bool
}

var _ openmldb.Lane = (*proxy.Loop)(nil)

// routeOf is the route of c's writes, made on its loop (onLoop) or elsewhere.
func routeOf(c proxy.ConnInfo, onLoop bool) route {
	if c.Loop == nil {
		return route{}
	}
	return route{lane: c.Loop, onLoop: onLoop}
}

// offLoop is r for a caller that has left the loop.
func (r route) offLoop() route {
	r.onLoop = false
	return r
}

// finishing is one finishProduce in progress: which partitions are still being written, and
// the callback to run when none is.
type finishing struct {
	t      *Tee
	c      proxy.ConnInfo
	jobs   []storeJob
	cancel context.CancelFunc
	done   func()

	mu     sync.Mutex
	writes []*rowWrite // per job: the write it started, if it started one
	open   []bool      // per job: its outcome is not in yet
	// kept, per job the deadline answered while its write went on: the release of the bytes it
	// keeps counted against the proxy's queued bytes until that write ends (ConnInfo.Keep).
	kept  []func()
	left  int  // open jobs, plus one for the starter until it has started them all
	timed bool // a write is out, so the deadline timer runs (set before the starter's end)
	timer *time.Timer
}

// end records job i's outcome (i < 0: the starter is through) and completes the finish when it was
// the last. An outcome after the deadline has expired the job is dropped: the answer is out.
func (f *finishing) end(i int, msg string) {
	f.mu.Lock()
	if i >= 0 {
		if !f.open[i] {
			// The write's own end after the deadline's answer (or the reverse): the bytes it
			// kept are free now.
			release := f.kept[i]
			f.kept[i] = nil
			f.mu.Unlock()
			if release != nil {
				release()
			}
			return
		}
		f.open[i] = false
		f.t.report(f.c, f.jobs[i], msg)
	}
	f.left--
	last := f.left == 0
	f.mu.Unlock()
	if last {
		if f.timer != nil {
			f.timer.Stop()
		}
		f.cancel()
		f.done()
	}
}

// whileOpen runs fn if job i's outcome is not in yet, under the lock that the deadline's answer
// takes, and reports whether it ran: what fn did is then behind the answer the client gets.
func (f *finishing) whileOpen(i int, fn func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open[i] {
		return false
	}
	fn()
	return true
}

// expire reports every write still out at the deadline. Each goes on (the ledger must learn
// its outcome) and keeps its partition's bytes counted against the proxy's queued bytes until it
// ends: a client choosing a short timeout would otherwise have answered requests' writes pile up
// beyond limits.max_queued_bytes.
func (f *finishing) expire() {
	for i, j := range f.jobs {
		f.mu.Lock()
		open, rows := f.open[i], len(j.plan.rows)
		if w := f.writes[i]; w != nil {
			rows = w.rows
		}
		if open && f.c.Keep != nil {
			f.kept[i] = f.c.Keep(int64(j.plan.bytes))
		}
		f.mu.Unlock()
		if open {
			f.end(i, j.plan.timeoutMessage(rows))
		}
	}
}

// report marks a partition whose rows are not all stored (msg != "") in the client's answer,
// or logs and counts it for acks=0.
func (t *Tee) report(c proxy.ConnInfo, j storeJob, msg string) {
	if msg == "" {
		return
	}
	if j.part != nil {
		j.part.ErrorCode = codeRowsMissingAfterAppend
		j.part.ErrorMessage = &msg
		return
	}
	t.metrics.acks0Failures.Inc()
	if ok, suppressed := t.logLimit.Allow("acks0 " + j.plan.tableName()); ok {
		t.log.Error("acks=0 produce: rows not stored", "client", c.RemoteAddr, "topic", j.plan.topic, "partition", j.plan.partition,
			"reason", msg, "suppressed", suppressed)
	}
}

// startWaiting starts job i's store, waiting for what it needs first (its dead-letter produce,
// or an earlier attempt at the batch), on a goroutine of its own. Its write then ends the job as
// the others' do, through its notify: the deadline answers for it meanwhile, keeping its bytes
// counted until the write really ends (expire). Its rows are held only while the client is
// still to be answered (whileOpen).
func (f *finishing) startWaiting(ctx context.Context, i int, r route) {
	j := f.jobs[i]
	w, msg, _ := f.t.startStore(ctx, j.plan, j.part, true, nil, r, func(o writeOutcome, w *rowWrite) {
		f.end(i, w.message(o))
	}, func(hold func()) bool { return f.whileOpen(i, hold) })
	if w == nil {
		f.end(i, msg)
		return
	}
	f.mu.Lock()
	f.writes[i] = w
	f.mu.Unlock()
}

// rowWrite is one partition's rows being written to OpenMLDB.
type rowWrite struct {
	p      *partitionPlan
	rows   int                           // rows written by this attempt
	notify func(writeOutcome, *rowWrite) // learns the outcome
}

type writeOutcome struct {
	failed   int
	firstErr error
}

// startStore dead-letters the partition's invalid records and starts writing its rows. It
// returns the write in progress, or nil and the outcome ("" when there is nothing to write).
// With mayBlock false it does not wait for anything: when it would have to (a dead-letter
// produce, or an earlier attempt at the same batch still writing), it does nothing and reports
// started false. With batch the Puts wait for batch.Flush; notify learns the write's outcome. A
// caller that may run after the client was answered (the deadline passed while it waited)
// passes claim, which runs hold only while the partition's answer is still to come and reports
// whether it did.
func (t *Tee) startStore(ctx context.Context, p *partitionPlan, part *kmsg.ProduceResponseTopicPartition, mayBlock bool,
	batch *openmldb.WriteBatch, r route, notify func(writeOutcome, *rowWrite), claim func(hold func()) bool) (w *rowWrite, msg string, started bool) {
	deadLetters := len(p.invalid) > 0 && p.sink.OnInvalid == config.OnInvalidDLQ
	if deadLetters && !mayBlock {
		return nil, "", false
	}
	// An idempotent batch's attempts share its progress in the ledger: which rows are stored,
	// and whether its invalid records are dead-lettered, so a retry repeats neither.
	var todo batchTodo
	release := func(batchDone) {}
	if p.idempotent() && (len(p.rows) > 0 || deadLetters) {
		// A batch whose records all failed before its table was resolved has no rows, and no
		// real table has TID 0: its dead letters are still remembered.
		var tid uint32
		if p.state != nil {
			tid = p.state.table.TID
		}
		key := producerPartition{producerID: p.producerID, epoch: p.epoch, topic: p.topic, partition: p.partition, tid: tid}
		if mayBlock {
			var err error
			todo, release, err = t.ledger.acquire(ctx, key, p.baseSequence, len(p.rows))
			if err != nil {
				return nil, fmt.Sprintf("an earlier attempt at this batch is still writing to OpenMLDB table %s; retry", p.tableName()), true
			}
		} else {
			var ok bool
			if todo, release, ok = t.ledger.tryAcquire(key, p.baseSequence, len(p.rows)); !ok {
				return nil, "", false
			}
		}
	}
	deadLettered := todo.deadLettered
	if deadLetters && !deadLettered {
		var base int64 = -1
		if part != nil {
			base = part.BaseOffset
		}
		if produced, err := t.deadLetter(ctx, p, base, todo.lettered); err != nil {
			release(batchDone{lettered: produced})
			t.logDeadLetterFailure(p, len(produced), err)
			return nil, fmt.Sprintf("dead-letter topic %s: %d of %d invalid records not produced: %v", p.sink.DLQTopic,
				len(p.invalid)-len(todo.lettered)-len(produced), len(p.invalid), err), true
		}
		deadLettered = true
	}
	if len(p.rows) == 0 || p.state == nil {
		release(batchDone{deadLettered: deadLettered})
		return nil, "", true
	}
	// rows and at (each row's index in p.rows) are the plan's own slices when every row is
	// written, the usual case.
	rows, at := p.rows, []int(nil)
	if todo.rows != nil && !allTrue(todo.rows) {
		rows = make([]openmldb.Row, 0, len(p.rows))
		at = make([]int, 0, len(p.rows))
		for i, need := range todo.rows {
			if need {
				rows = append(rows, p.rows[i])
				at = append(at, i)
			}
		}
		t.metrics.rowsDeduplicated.WithLabelValues(p.tableName()).Add(float64(len(p.rows) - len(rows)))
	}
	if len(rows) == 0 {
		release(batchDone{deadLettered: deadLettered})
		return nil, "", true
	}
	// Rows an earlier attempt stored in some of their partitions go only to the others.
	var storedParts [][]uint32
	if len(todo.parts) > 0 {
		storedParts = make([][]uint32, len(rows))
		for j := range rows {
			i := j
			if at != nil {
				i = at[j]
			}
			storedParts[j] = todo.parts[i]
		}
	}
	if p.transactional {
		// Held until EndTxn; a retried batch of the same transaction is held only once.
		probe := markerProbe{offset: -1}
		if part != nil {
			probe = markerProbe{topic: p.topic, partition: p.partition, offset: part.BaseOffset}
		}
		hold := func() {
			t.txns.hold(p.transactionalID, txnKey{p.producerID, p.epoch}, probe, p.state, p.sink.ExactlyOnce, rows)
		}
		if claim == nil {
			hold()
		} else if !claim(hold) {
			// The deadline answered the partition with an error first. The producer has heard
			// the batch failed and retries it (the retry holds the rows) or aborts; rows held
			// now could outlive that abort and be written by the producer's next commit under
			// the same epoch.
			release(batchDone{deadLettered: deadLettered})
			t.metrics.txnRowsDropped.WithLabelValues(dropLate).Add(float64(len(rows)))
			return nil, "", true
		}
		all := make([]bool, len(p.rows))
		for i := range all {
			all[i] = true
		}
		release(batchDone{stored: all, deadLettered: deadLettered})
		return nil, "", true
	}

	// The write runs detached from the request: when the client's deadline passes first, the
	// Puts still out may land, and the ledger must learn their outcome before a retry decides
	// what is missing. It completes through a callback (on the OpenMLDB client's reader), so
	// no goroutine waits for it.
	w = &rowWrite{p: p, rows: len(rows), notify: notify}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultWriteTimeout)
	start := time.Now()
	m := p.state.m
	t.store.WriteAsync(wctx, p.state.table, rows, openmldb.WriteOptions{PutIfAbsent: p.sink.ExactlyOnce, AnyTieOrder: p.sink.TieOrder == config.TieOrderAny, Validated: true, Batch: batch, Lane: r.lane, OnLane: r.onLoop, StoredPartitions: storedParts}, func(errs []error) {
		cancel()
		m.writeSeconds.Observe(time.Since(start).Seconds())
		d := batchDone{deadLettered: deadLettered}
		if p.idempotent() {
			d.stored = make([]bool, len(p.rows))
		}
		var o writeOutcome
		for j, err := range errs {
			i := j
			if at != nil {
				i = at[j]
			}
			if err == nil {
				if d.stored != nil {
					d.stored[i] = true
				}
				continue
			}
			if parts := openmldb.StoredPartitions(err); len(parts) > 0 && d.stored != nil {
				if d.parts == nil {
					d.parts = make(map[int][]uint32)
				}
				d.parts[i] = parts
			}
			o.failed++
			if o.firstErr == nil {
				o.firstErr = err
			}
		}
		release(d)
		m.written.Add(float64(len(rows) - o.failed))
		if o.failed > 0 {
			m.failed.Add(float64(o.failed))
		}
		w.notify(o, w)
	})
	return w, "", true
}

// message is what the client should read about a finished write ("" when every row is stored).
func (w *rowWrite) message(o writeOutcome) string {
	p := w.p
	if o.failed == 0 {
		return ""
	}
	how := "an idempotent retry writes only the missing rows"
	if !p.idempotent() {
		how = "the producer is not idempotent, so a retry appends the batch to Kafka again and rewrites all its rows"
	}
	return fmt.Sprintf("the batch is in Kafka but %d of %d rows are not stored in OpenMLDB table %s (%v); %s",
		o.failed, len(p.rows), p.tableName(), o.firstErr, how)
}

// timeoutMessage is what the client reads when rows of the partition were still being written at
// its request's deadline.
func (p *partitionPlan) timeoutMessage(rows int) string {
	if len(p.invalid) > 0 && p.sink.OnInvalid == config.OnInvalidDLQ {
		return fmt.Sprintf("the batch is in Kafka but, when the request timeout expired, its %d invalid records were not confirmed in dead-letter topic %s or its %d rows in OpenMLDB table %s; retry",
			len(p.invalid), p.sink.DLQTopic, rows, p.tableName())
	}
	return fmt.Sprintf("the batch is in Kafka but its %d rows were still being written to OpenMLDB table %s when the request timeout expired; retry",
		rows, p.tableName())
}

func allTrue(b []bool) bool {
	for _, v := range b {
		if !v {
			return false
		}
	}
	return true
}
