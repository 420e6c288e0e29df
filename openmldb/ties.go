package openmldb

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// tieGate keeps the write order of rows that tie on an index with a TS column: same table,
// partition, index, key and event time. OpenMLDB lists the last inserted of a key's
// equal-timestamp rows as the newest, and a tablet may apply pipelined Puts in any order (brpc
// runs the requests of one socket read concurrently), so a Put that ties with an unanswered one
// waits for that one's answer. For indexes without a TS column putStamps does the same job at
// no cost in round trips; here the timestamp is the record's own and cannot be moved.
//
// Every Put of a table with a TS-column index enters one FIFO queue per tie key it carries and
// is sent when it heads all of them. A Put enters all its queues at once under one lock, so
// every queue orders its Puts as the lock did and no two Puts can wait for each other. Rows
// whose event times differ never wait: only an exact tie is a key.
type tieGate struct {
	seed  maphash.Seed
	mu    sync.Mutex
	tails map[uint64]*tieEntry // per tie key: the last entry queued; the first is in flight
	waits atomic.Uint64        // Puts that waited (TieWaits)
}

// tieEntry is one attempt's place in the gate. Each queue is linked through next, and only a
// queue's head leaves, so the gate keeps the tails alone.
type tieEntry struct {
	job     *writeJob
	op      int
	keys    []uint64    // the Put's tie keys, one per dimension on a TS-column index
	next    []*tieEntry // per key: the entry queued behind this one
	blocked int         // queues this entry does not head yet
	left    bool        // out of its queues (an expired Put leaves by its late or a timer)
	timer   *time.Timer // an expired Put's latest leave; stopped when it leaves first
}

// leaveBy makes an expired Put's entry leave after d at the latest, unless it has left already.
func (g *tieGate) leaveBy(e *tieEntry, d time.Duration, leave func(*tieEntry)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(e.keys) > 0 && !e.left && e.timer == nil {
		e.timer = time.AfterFunc(d, func() { leave(e) })
	}
}

// renewed is a fresh place in w for the op's next attempt: e itself may still be queued.
func (e *tieEntry) renewed(w *writeJob) *tieEntry {
	return &tieEntry{job: w, op: e.op, keys: e.keys, next: make([]*tieEntry, len(e.keys))}
}

func newTieGate() *tieGate {
	return &tieGate{seed: maphash.MakeSeed(), tails: map[uint64]*tieEntry{}}
}

// tieKey names (table, partition, index, key, event time); a collision only makes a Put wait
// needlessly.
func (g *tieGate) tieKey(tid, pid, idx uint32, key []byte, ts int64) uint64 {
	return maphash.Bytes(g.seed, key) ^ mix64(uint64(ts)^mix64(uint64(tid)<<32|uint64(pid))^uint64(idx)<<56)
}

// mix64 is MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// enter queues the entries of ops sel (in that order) and appends to ready those that head
// every queue they are in, which may be sent now; the others are handed out by leave.
func (g *tieGate) enter(entries []*tieEntry, sel []int, ready []int) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	parked := 0
	for _, oi := range sel {
		e := entries[oi]
		for _, k := range e.keys {
			if tail, ok := g.tails[k]; ok {
				tail.next[tail.slot(k)] = e
				e.blocked++
			}
			g.tails[k] = e
		}
		if e.blocked == 0 {
			ready = append(ready, oi)
		} else {
			parked++
		}
	}
	g.waits.Add(uint64(parked))
	return ready
}

// leave takes e, which heads every queue it is in, out of them once its Put is over and returns
// the entries that now head all their queues: their Puts may be sent. Leaving again is a no-op.
func (g *tieGate) leave(e *tieEntry, woken []*tieEntry) []*tieEntry {
	if len(e.keys) == 0 {
		return woken
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.left {
		return woken
	}
	e.left = true
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	for j, k := range e.keys {
		n := e.next[j]
		if n == nil {
			delete(g.tails, k) // e was the tail too: the queue is empty
			continue
		}
		if n.blocked--; n.blocked == 0 {
			woken = append(woken, n)
		}
	}
	// A stopped timer can stay in the runtime's heap a while, and late callbacks live as long as
	// their calls: what still points at e must not keep its Write (rows, callbacks) or the
	// entries after it reachable.
	e.job, e.next = nil, nil
	return woken
}

// slot is the position of key k among e's keys.
func (e *tieEntry) slot(k uint64) int {
	for j, x := range e.keys {
		if x == k {
			return j
		}
	}
	panic("openmldb: tie entry queued under a key it does not carry")
}

// entries builds the gate entries of a Write's ops, or nil when t has no index with a TS column
// (its Puts never wait). An op carries one tie key per dimension on a TS-column index.
func (g *tieGate) entries(w *writeJob, t *Table, rows []Row, ops []putOp, keys []byte) []*tieEntry {
	n := 0
	for i := range ops {
		for _, d := range ops[i].dims {
			if t.tsOf[d.idx] >= 0 {
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	arena := make([]tieEntry, len(ops))
	es := make([]*tieEntry, len(ops))
	hashes := make([]uint64, 0, n)
	nexts := make([]*tieEntry, n)
	for i := range ops {
		op := &ops[i]
		start := len(hashes)
		for _, d := range op.dims {
			p := t.tsOf[d.idx]
			if p < 0 {
				continue
			}
			k := g.tieKey(t.TID, op.pid, d.idx, keys[d.start:d.end], rows[op.row][p].I)
			// A key twice in one entry (a hash collision) would queue the entry behind itself.
			if !slices.Contains(hashes[start:], k) {
				hashes = append(hashes, k)
			}
		}
		end := len(hashes)
		arena[i] = tieEntry{job: w, op: i, keys: hashes[start:end:end], next: nexts[start:end:end]}
		es[i] = &arena[i]
	}
	return es
}

// sendWoken sends the Puts whose ties were answered, one issue per Write, in the order woken.
func sendWoken(woken []*tieEntry) {
	for len(woken) > 0 {
		w := woken[0].job
		var ops []int
		rest := woken[:0]
		for _, e := range woken {
			if e.job == w {
				ops = append(ops, e.op)
			} else {
				rest = append(rest, e)
			}
		}
		woken = rest
		w.issueWoken(ops)
	}
}

// TieWaits returns how many Puts have waited for the answer to an earlier Put of a row with the
// same key and event time on an index with a TS column (see tieGate): a steady climb means a
// workload of many equal event times per key, written at one row per round trip per key.
func (c *Client) TieWaits() uint64 { return c.ties.waits.Load() }
