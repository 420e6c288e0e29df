package tee

import (
	"container/list"
	"context"
	"slices"
	"sync"
)

// batchesPerProducerPartition mirrors the broker: Kafka deduplicates an idempotent producer's
// retries against the five latest batches (by sequence) of each partition, so that is all a
// retry can refer to.
const batchesPerProducerPartition = 5

// producerPartition identifies one idempotent producer session writing one partition into one
// table: a retry planned against another table (a Reload mapped the topic elsewhere, or the table
// was dropped and created again) finds none of the rows stored and writes them all there.
type producerPartition struct {
	producerID int64
	epoch      int16
	topic      string
	partition  int32
	tid        uint32
}

// batchProgress records which rows of one batch are stored in OpenMLDB. While an attempt is
// writing, busy is open: a retry waits for it, because Puts that outlived the client's deadline
// may still land, and writing their rows again would duplicate them.
type batchProgress struct {
	baseSequence int32
	stored       []bool
	// parts holds, for rows stored in some of their partitions only (a table whose indexes hash
	// a row to several partitions), the partitions that hold them, so a retry writes the others.
	parts map[int][]uint32
	// deadLettered: the batch's invalid records are in its dead-letter topic. Before that,
	// lettered lists those an attempt got there while others failed (by index in the partition).
	deadLettered bool
	lettered     []int
	busy         chan struct{} // nil when no attempt is writing
	waiters      int           // attempts waiting on busy: they need the batch after it closes
}

// batchTodo is what an attempt at a batch must write.
type batchTodo struct {
	rows []bool // rows[i]: row i is not stored yet
	// parts, for rows stored in some partitions only, lists those partitions (by row); nil
	// when there are none.
	parts map[int][]uint32
	// deadLettered: an earlier attempt produced the invalid records to the dead-letter topic;
	// else lettered lists those earlier attempts did produce (by index in the partition).
	deadLettered bool
	lettered     []int
}

// batchDone is what an attempt at a batch stored: stored[i] for rows now in every partition,
// parts for rows that reached some partitions only, and whether the invalid records are
// dead-lettered (all of them, or the ones in lettered).
type batchDone struct {
	stored       []bool
	parts        map[int][]uint32
	deadLettered bool
	lettered     []int
}

// addLettered records the dead letters an attempt produced and returns how much its cost
// changed (the ledger's rows bound counts listed dead letters too: a batch of invalid records
// only has no rows); mu is held.
func (b *batchProgress) addLettered(d batchDone) int {
	before := len(b.lettered)
	if b.deadLettered || d.deadLettered {
		b.deadLettered, b.lettered = true, nil
		return -before
	}
	have := make(map[int]bool, len(b.lettered))
	for _, i := range b.lettered {
		have[i] = true
	}
	for _, i := range d.lettered {
		if !have[i] {
			have[i] = true
			b.lettered = append(b.lettered, i)
		}
	}
	return len(b.lettered) - before
}

// cost is what the batch counts against the ledger's rows bound.
func (b *batchProgress) cost() int { return len(b.stored) + len(b.lettered) }

// ledger remembers, per (producer id, epoch, partition, base sequence), which rows of recent
// idempotent batches are already in OpenMLDB. A client retrying a batch (because the proxy
// answered a retriable error, or because the answer was lost) sends the same base sequence; the
// broker deduplicates the append and the ledger tells the tee which rows are still missing, so no
// row is lost and none is written twice. It is bounded: the least recently used producer
// partitions are forgotten beyond max entries.
type ledger struct {
	mu    sync.Mutex
	max   int
	items map[producerPartition]*list.Element
	lru   *list.List // of *ledgerEntry, front = most recent
	// rows counts the rows of every batch remembered (a byte each, plus their partitions), and
	// maxRows bounds them: producer partitions alone do not bound memory when batches are big.
	rows, maxRows int
}

// defaultLedgerRows bounds the rows the ledger remembers: about 16 MB.
const defaultLedgerRows = 16 << 20

type ledgerEntry struct {
	key     producerPartition
	batches []*batchProgress // at most batchesPerProducerPartition, the latest by sequence, in no order
}

func newLedger(max int) *ledger {
	if max <= 0 {
		max = 100_000
	}
	return &ledger{max: max, maxRows: defaultLedgerRows, items: make(map[producerPartition]*list.Element), lru: list.New()}
}

// acquire starts an attempt at writing a batch of n rows. It waits (until ctx ends) for an
// earlier attempt at the same batch that is still writing, then returns what must be written now
// — every row for a new batch, the missing rows (and partitions) for a retry — and a release
// function the attempt must call with what it stored, whenever its writes have ended.
func (l *ledger) acquire(ctx context.Context, key producerPartition, baseSequence int32, n int) (batchTodo, func(batchDone), error) {
	var waited *batchProgress
	for {
		todo, release, b, busy := l.tryWaiting(key, baseSequence, n, waited)
		if b == nil {
			return todo, release, nil
		}
		waited = b
		select {
		case <-busy:
		case <-ctx.Done():
			l.mu.Lock()
			b.waiters--
			l.mu.Unlock()
			return batchTodo{}, nil, ctx.Err()
		}
	}
}

// tryAcquire is acquire without waiting: ok is false when an earlier attempt at the batch is
// still writing.
func (l *ledger) tryAcquire(key producerPartition, baseSequence int32, n int) (todo batchTodo, release func(batchDone), ok bool) {
	todo, release, b, _ := l.tryWaiting(key, baseSequence, n, nil)
	if b != nil {
		l.mu.Lock()
		b.waiters-- // not waiting after all
		l.mu.Unlock()
	}
	return todo, release, b == nil
}

// try starts an attempt, or returns the busy channel of the attempt in progress.
func (l *ledger) tryWaiting(key producerPartition, baseSequence int32, n int, waited *batchProgress) (batchTodo, func(batchDone), *batchProgress, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if waited != nil {
		waited.waiters--
	}
	b := l.batch(key, baseSequence, n)
	if b.busy != nil {
		b.waiters++
		return batchTodo{}, nil, b, b.busy
	}
	b.busy = make(chan struct{})
	todo := batchTodo{rows: make([]bool, n), deadLettered: b.deadLettered, lettered: slices.Clone(b.lettered)}
	for i, done := range b.stored {
		todo.rows[i] = !done
	}
	if len(b.parts) > 0 {
		todo.parts = make(map[int][]uint32, len(b.parts))
		for i, p := range b.parts {
			todo.parts[i] = slices.Clone(p)
		}
	}
	release := func(d batchDone) {
		l.mu.Lock()
		l.rows += b.addLettered(d)
		for i, done := range d.stored {
			b.stored[i] = b.stored[i] || done
			if done {
				delete(b.parts, i)
			}
		}
		for i, p := range d.parts {
			if b.stored[i] {
				continue
			}
			if b.parts == nil {
				b.parts = make(map[int][]uint32)
			}
			for _, pid := range p {
				if !slices.Contains(b.parts[i], pid) {
					b.parts[i] = append(b.parts[i], pid)
				}
			}
		}
		close(b.busy)
		b.busy = nil
		l.mu.Unlock()
	}
	return todo, release, nil, nil
}

// whole reports whether every row of the batch is known to be stored (for a transactional
// batch: held). It adds nothing to the ledger.
func (l *ledger) whole(key producerPartition, baseSequence int32, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[key]
	if !ok {
		return false
	}
	b := el.Value.(*ledgerEntry).find(baseSequence, n)
	return b != nil && allTrue(b.stored)
}

// find returns the progress of the batch of baseSequence and n rows, or nil.
func (e *ledgerEntry) find(baseSequence int32, n int) *batchProgress {
	for _, b := range e.batches {
		if b.baseSequence == baseSequence && len(b.stored) == n {
			return b
		}
	}
	return nil
}

// batch finds or adds the progress of a batch; l.mu must be held.
func (l *ledger) batch(key producerPartition, baseSequence int32, n int) *batchProgress {
	el, ok := l.items[key]
	if !ok {
		el = l.lru.PushFront(&ledgerEntry{key: key})
		l.items[key] = el
	} else {
		l.lru.MoveToFront(el)
	}
	e := el.Value.(*ledgerEntry)
	if b := e.find(baseSequence, n); b != nil {
		return b
	}
	b := &batchProgress{baseSequence: baseSequence, stored: make([]bool, n)}
	e.batches = append(e.batches, b)
	l.rows += n
	// The least recently used producer partitions go first, never the one just used nor one
	// with a batch an attempt is still writing: a retry finding no entry would not wait for it,
	// and would write every row again while its Puts may still land. Those are bounded by the
	// writes in flight.
	for l.lru.Len() > l.max || l.rows > l.maxRows {
		old := l.lru.Back()
		for old != nil && (old == el || writing(old.Value.(*ledgerEntry))) {
			old = old.Prev()
		}
		if old == nil {
			break
		}
		l.lru.Remove(old)
		oe := old.Value.(*ledgerEntry)
		delete(l.items, oe.key)
		for _, ob := range oe.batches {
			l.rows -= ob.cost()
		}
	}
	for len(e.batches) > batchesPerProducerPartition {
		// Forget the batch with the lowest sequence, as the broker does, not the one seen first:
		// Finishes of pipelined requests start out of order (a large one encodes on a goroutine
		// while a small later one runs on the loop), and forgetting by arrival dropped a batch the
		// broker still deduplicates, so its retry wrote every row again. Not while an attempt is
		// still writing it: a retry waiting for that attempt would find a fresh batch and write
		// every row again; the entry keeps it (and more) until a later batch comes after it ends.
		oldest := 0
		for i, c := range e.batches {
			if seqBefore(c.baseSequence, e.batches[oldest].baseSequence) {
				oldest = i
			}
		}
		if ob := e.batches[oldest]; ob.busy != nil || ob.waiters > 0 {
			break
		}
		l.rows -= e.batches[oldest].cost()
		e.batches = slices.Delete(e.batches, oldest, oldest+1)
	}
	return b
}

// writing reports whether an attempt is writing one of e's batches.
func writing(e *ledgerEntry) bool {
	for _, b := range e.batches {
		if b.busy != nil || b.waiters > 0 {
			return true
		}
	}
	return false
}

// seqBefore reports whether sequence a comes before b. Sequences are 31-bit and wrap from
// MaxInt32 to 0; batches compared are a few thousand records apart at most, so b is after a when
// it is less than half the space ahead of it, counting modulo 2^31.
func seqBefore(a, b int32) bool {
	d := (int64(b) - int64(a)) & (1<<31 - 1)
	return d != 0 && d < 1<<30
}
