package tee

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// txnKey identifies one transaction: a transactional producer id and the epoch its batches and
// its EndTxn carry.
type txnKey struct {
	producerID int64
	epoch      int16
}

// heldGroup is rows of one table held for a transaction.
type heldGroup struct {
	state       *tableState
	putIfAbsent bool
	rows        []openmldb.Row
	// stored, when not nil, has one entry per row: the partitions of state.table an earlier
	// attempt stored it in (openmldb.PartialWriteError), which the next attempt skips.
	stored [][]uint32
}

// add appends g's rows, and what is known of their partitions, to h.
func (h *heldGroup) add(g heldGroup) {
	switch {
	case g.stored != nil && h.stored == nil:
		h.stored = append(make([][]uint32, len(h.rows), len(h.rows)+len(g.rows)), g.stored...)
	case g.stored != nil:
		h.stored = append(h.stored, g.stored...)
	case h.stored != nil:
		h.stored = append(h.stored, make([][]uint32, len(g.rows))...)
	}
	h.rows = append(h.rows, g.rows...)
}

// addRow appends one row, stored in the partitions listed (none: nil).
func (h *heldGroup) addRow(r openmldb.Row, stored []uint32) {
	if stored != nil && h.stored == nil {
		h.stored = make([][]uint32, len(h.rows), len(h.rows)+1)
	}
	if h.stored != nil {
		h.stored = append(h.stored, stored)
	}
	h.rows = append(h.rows, r)
}

// heldTxn is what one open transaction holds.
type heldTxn struct {
	transactionalID string
	groups          []heldGroup
	since           time.Time // when its first rows were held
	probe           markerProbe
}

// markerProbe is where a transaction's outcome can be read back from Kafka: a partition it wrote
// and the offset of one of its batches there. The coordinator writes the transaction's marker (a
// control record of its producer id, COMMIT or ABORT) into every partition it wrote, after its
// batches and before the producer can begin another transaction, so the first control record of
// that producer id after the offset is this transaction's outcome.
type markerProbe struct {
	topic     string
	partition int32
	offset    int64
}

func (p markerProbe) known() bool { return p.topic != "" && p.offset >= 0 }

// pendingCommit is a transaction's rows while its outcome is unknown here: its EndTxn commit is
// at the broker (journaled before it is forwarded, since from then on Kafka may commit whether or
// not this process hears of it), or an earlier run's journal says it was when that run stopped.
type pendingCommit struct {
	key             txnKey
	transactionalID string
	probe           markerProbe
	groups          []heldGroup
	since           time.Time // of the transaction's first rows (this run's pending only)
	// undecidable says why its marker cannot be read (the batch compacted or deleted away, the
	// offset gone to retention), once the marker reader has given up on it; only then may an
	// operator settle it (journal commit / abort). Guarded by heldRows.mu.
	undecidable string
}

// Reasons held rows are dropped (the reason label of okp_tee_txn_rows_dropped_total).
const (
	dropAborted = "aborted" // EndTxn abort passed through
	dropFenced  = "fenced"  // InitProducerId for the same transactional id bumped the epoch or id
	dropExpired = "expired" // open longer than kafka.transaction_max_timeout
	// dropLate: rows of a Produce whose answer (an error at its deadline) went out before they
	// could be held; the producer retries the batch, whose retry holds them, or aborts.
	dropLate = "late"
	// dropUnwritable: committed, but a row no retry can store (it does not fit its table, or the
	// table is gone), or still unwritten when the tee closed.
	dropUnwritable = "unwritable"
)

// heldRows keeps the rows of open transactions until their EndTxn: OpenMLDB has no
// transactions, so rows become visible only once Kafka has committed them, and never if the
// transaction aborts. A transaction whose EndTxn never comes through the proxy (the producer
// crashed and the coordinator aborted it on timeout, or a new instance fenced it) is released by
// fencing or by age, so memory stays bounded.
type heldRows struct {
	maxAge  time.Duration
	dropped func(reason string, rows int)
	// nextSweep (unix ns) makes sweep a single atomic load on most requests.
	nextSweep atomic.Int64

	// gauge is told the rows held now, open and committed-but-unwritten (both under mu).
	gauge func(open, committed int)
	// undecidableGauge, if set, is told how many loaded commits the marker reader gave up on
	// (under mu).
	undecidableGauge func(n int)

	mu   sync.Mutex
	txns map[txnKey]*heldTxn
	// committed holds rows of transactions Kafka committed whose OpenMLDB write failed, apart
	// from txns: the producer's next transaction reuses the same (producer id, epoch), and its
	// abort must not take these along. They are never dropped; the proxy keeps writing them.
	committed map[txnKey][]heldGroup
	// writing holds committed rows taken for an attempt (by attempt), until it settles: they are
	// still owed to OpenMLDB, and the journal must keep them meanwhile.
	writing     map[int64][]heldGroup
	nextAttempt int64
	// Rows held now: of open transactions, and of committed ones not yet written; openNow
	// mirrors openRows for readers without mu (the planning of every transactional batch).
	openRows, committedRows int
	openNow                 atomic.Int64
	// expired remembers, for another maxAge, the transactions dropped by age and their rows, so a
	// commit that still arrives for one is reported instead of passing silently.
	expired map[txnKey]expiredTxn
	// fenced is, per transactional id, the producer identity its last InitProducerId answered
	// with (kept for maxAge): a fenced producer's Produce still in flight then is not held again.
	fenced map[string]fencedBy
	// pending: transactions whose EndTxn commit is at the broker. loaded: those an earlier run's
	// journal left undecided, until their marker is read (kept apart: the same producer id and
	// epoch may commit again in this run under transaction version 1).
	pending map[txnKey]*pendingCommit
	loaded  []*pendingCommit
	// nextAdopted numbers the keys of adopted rows (negative, never a Kafka producer id).
	nextAdopted int64
	// undecided, if set, is given pending commits that fencing or age took from pending to
	// loaded: their commit's answer never came, so only their marker can decide them. Called
	// without mu.
	undecided func([]*pendingCommit)
}

// fencedBy is the identity a transactional id was fenced with, and when.
type fencedBy struct {
	key txnKey
	at  time.Time
}

// expiredTxn is a transaction whose held rows were dropped by age.
type expiredTxn struct {
	at   time.Time
	rows int
}

// expiryGrace is added to maxAge before rows are dropped: the coordinator aborts a timed-out
// transaction on a periodic pass (transaction.abort.timed.out.transaction.cleanup.interval.ms,
// 10 s by default), so until then a late EndTxn commit can still succeed. It is a minute, or
// maxAge when that is shorter (tests).
const expiryGrace = time.Minute

func newHeldRows(maxAge time.Duration, dropped func(reason string, rows int), gauge func(open, committed int)) *heldRows {
	return &heldRows{maxAge: maxAge, dropped: dropped, gauge: gauge, txns: map[txnKey]*heldTxn{},
		committed: map[txnKey][]heldGroup{}, writing: map[int64][]heldGroup{}, expired: map[txnKey]expiredTxn{}, fenced: map[string]fencedBy{},
		pending: map[txnKey]*pendingCommit{}}
}

// count moves n rows (negative: removes them) in or out of the held totals; mu is held.
func (h *heldRows) count(committed bool, n int) {
	if committed {
		h.committedRows += n
	} else {
		h.openRows += n
		h.openNow.Store(int64(h.openRows))
	}
	h.gauge(h.openRows, h.committedRows)
}

// hold keeps rows of transaction k until its EndTxn. Rows of a transaction already fenced (a
// zombie producer's Produce answered by the broker before the fence, finished after it) are
// dropped at once: that transaction can no longer commit.
func (h *heldRows) hold(transactionalID string, k txnKey, probe markerProbe, st *tableState, putIfAbsent bool, rows []openmldb.Row) {
	h.mu.Lock()
	if f, ok := h.fenced[transactionalID]; ok && f.key.producerID == k.producerID && k.epoch < f.key.epoch {
		// Only an older epoch of the same producer id is certainly fenced: a different id may be
		// the one the coordinator assigns when the epoch is exhausted (KIP-890), still live.
		h.mu.Unlock()
		h.dropped(dropFenced, len(rows))
		return
	}
	defer h.mu.Unlock()
	tx := h.txns[k]
	if tx == nil {
		tx = &heldTxn{transactionalID: transactionalID, since: time.Now()}
		h.txns[k] = tx
	}
	tx.groups = append(tx.groups, heldGroup{state: st, putIfAbsent: putIfAbsent, rows: rows})
	if probe.known() {
		tx.probe = probe
	}
	h.count(false, len(rows))
}

// pend moves k's open rows to pending while its EndTxn commit is at the broker, when a probe can
// read the outcome back; it reports whether it did. The rows still count as open.
//
// A pending commit stays pending until the broker's success (commit), a successful abort (take),
// or, when the answer never comes, fencing or age hand it to the marker reader (drop): an error
// answer does not prove that the commit did not happen (a coordinator failing over after writing
// PrepareCommit). A commit retried meanwhile adds any newer rows to it.
//
// It reports whether k has pending rows now, and whether this call made the entry (created): an
// entry of an earlier forwarded commit must never go back to open rows (unpend).
func (h *heldRows) pend(k txnKey) (pending, created bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tx, pc := h.txns[k], h.pending[k]
	if pc != nil {
		if tx != nil {
			pc.groups = append(slices.Clip(pc.groups), tx.groups...)
			delete(h.txns, k)
		}
		return true, false
	}
	if tx == nil || !tx.probe.known() {
		return false, false
	}
	delete(h.txns, k)
	h.pending[k] = &pendingCommit{key: k, transactionalID: tx.transactionalID, probe: tx.probe, groups: tx.groups, since: tx.since}
	return true, true
}

// unpend returns k's pending rows to its open transaction when the commit was not forwarded
// after all (the journal could not be written).
func (h *heldRows) unpend(k txnKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pc := h.pending[k]
	if pc == nil {
		return
	}
	delete(h.pending, k)
	tx := h.txns[k]
	if tx == nil {
		tx = &heldTxn{transactionalID: pc.transactionalID, since: pc.since}
		h.txns[k] = tx
	}
	tx.groups = append(pc.groups, tx.groups...)
	if !tx.probe.known() {
		tx.probe = pc.probe
	}
}

// commit removes and returns k's rows, pending and open, now that the broker has committed them.
// With journaled set they join what attempt writes in the same step, so the journal never misses
// them; inJournal reports that every one of them was journaled as pending before the commit.
func (h *heldRows) commit(k txnKey, attempt int64, journaled bool) (groups []heldGroup, inJournal bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	groups, inJournal = h.takeLocked(k)
	if journaled && len(groups) > 0 {
		h.writing[attempt] = append(h.writing[attempt], groups...)
	}
	return groups, inJournal
}

// journalState returns, in one step, what the journal must hold: every committed row not stored
// yet (waiting, and being written) and every transaction whose outcome is unknown here. One step,
// since commit and resolve move rows from the second to the first.
func (h *heldRows) journalState() (owed []heldGroup, pending []*pendingCommit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Copies: a retried commit's pend may extend an entry's groups once mu is released.
	for _, pc := range h.loaded {
		c := *pc
		pending = append(pending, &c)
	}
	for _, pc := range h.pending {
		c := *pc
		pending = append(pending, &c)
	}
	return h.owedLocked(), pending
}

// undecidedRows counts the rows of commits whose outcome is unknown here (pending and loaded).
func (h *heldRows) undecidedRows() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, pc := range h.pending {
		n += countRows(pc.groups)
	}
	for _, pc := range h.loaded {
		n += countRows(pc.groups)
	}
	return n
}

// load keeps pending commits read back from the journal until resolve; their rows count as open.
func (h *heldRows) load(pcs []*pendingCommit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, pc := range pcs {
		h.loaded = append(h.loaded, pc)
		h.count(false, countRows(pc.groups))
	}
}

// resolve ends a pending commit read back from the journal. Committed rows become rows owed to
// OpenMLDB under keys of their own, returned for retryCommitted; aborted ones are dropped. ok is
// false when it was ended already (the marker and an operator raced).
func (h *heldRows) resolve(pc *pendingCommit, committed bool) (keys []txnKey, ok bool) {
	h.mu.Lock()
	i := slices.Index(h.loaded, pc)
	if i < 0 {
		h.mu.Unlock()
		return nil, false
	}
	h.loaded = slices.Delete(h.loaded, i, i+1)
	h.countUndecidableLocked()
	n := countRows(pc.groups)
	h.count(false, -n)
	if committed {
		// In the same step, so a journal save never finds the rows in neither place.
		defer h.mu.Unlock()
		return h.adoptLocked(mergeGroups(pc.groups)), true
	}
	h.mu.Unlock()
	h.dropped(dropAborted, n)
	return nil, true
}

// forget takes back rows adopted or loaded for a restore whose journal write failed, before any
// attempt at writing them has begun.
func (h *heldRows) forget(keys []txnKey, pcs []*pendingCommit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		h.count(true, -countRows(h.committed[k]))
		delete(h.committed, k)
	}
	for _, pc := range pcs {
		if i := slices.Index(h.loaded, pc); i >= 0 {
			h.loaded = slices.Delete(h.loaded, i, i+1)
			h.count(false, -countRows(pc.groups))
		}
	}
	h.countUndecidableLocked()
}

// giveUp records that the marker of a pending commit cannot be read, and why.
func (h *heldRows) giveUp(pc *pendingCommit, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pc.undecidable = why
	h.countUndecidableLocked()
}

// isLoaded reports whether pc still waits for its outcome.
func (h *heldRows) isLoaded(pc *pendingCommit) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.loaded, pc)
}

// giveUpOnce is giveUp for a pending commit not given up on yet, running first (a log) if it
// was; one already resolved or given up on is left as it is.
func (h *heldRows) giveUpOnce(pc *pendingCommit, why string, first func()) {
	h.mu.Lock()
	if pc.undecidable != "" || !slices.Contains(h.loaded, pc) {
		h.mu.Unlock()
		return
	}
	pc.undecidable = why
	h.countUndecidableLocked()
	h.mu.Unlock()
	first()
}

// countUndecidableLocked tells undecidableGauge how many loaded commits are given up on.
func (h *heldRows) countUndecidableLocked() {
	if h.undecidableGauge == nil {
		return
	}
	n := 0
	for _, pc := range h.loaded {
		if pc.undecidable != "" {
			n++
		}
	}
	h.undecidableGauge(n)
}

// loadedView is a pending commit whose answer will never come here, as an operator sees it.
type loadedView struct {
	pc          *pendingCommit
	desc        journalPending // without rows
	undecidable string
}

// loadedViews lists the pending commits whose answer will never come here.
func (h *heldRows) loadedViews() []loadedView {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]loadedView, 0, len(h.loaded))
	for _, pc := range h.loaded {
		out = append(out, loadedView{pc: pc, undecidable: pc.undecidable, desc: pc.describe()})
	}
	return out
}

// take removes and returns the open transaction's rows.
func (h *heldRows) take(k txnKey) []heldGroup {
	h.mu.Lock()
	defer h.mu.Unlock()
	groups, _ := h.takeLocked(k) // pending too: a commit whose answer never came, then an abort
	return groups
}

// takeLocked removes k's rows, pending ones first, then open ones; allPending reports that every
// one of them was pending. mu is held.
func (h *heldRows) takeLocked(k txnKey) (groups []heldGroup, allPending bool) {
	pc, tx := h.pending[k], h.txns[k]
	if pc != nil {
		groups = pc.groups
		delete(h.pending, k)
	}
	if tx != nil {
		groups = append(slices.Clip(groups), tx.groups...)
		delete(h.txns, k)
	}
	h.count(false, -countRows(groups))
	return groups, pc != nil && tx == nil
}

// takeCommitted removes and returns the committed rows of k still to be written, with the
// attempt that settles them. They stay in the gauge and the journal until settled: being written
// is not being stored.
func (h *heldRows) takeCommitted(k txnKey) (groups []heldGroup, attempt int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.committed[k]
	delete(h.committed, k)
	h.nextAttempt++
	if len(g) > 0 {
		h.writing[h.nextAttempt] = g
	}
	return g, h.nextAttempt
}

// settle ends an attempt at committed rows: taken rows (from takeCommitted) leave the gauge, left
// rows (still not stored, from any source) go back to wait for the next attempt.
func (h *heldRows) settle(k txnKey, attempt int64, taken int, left []heldGroup) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.writing, attempt)
	if len(left) > 0 {
		h.committed[k] = append(h.committed[k], left...)
	}
	h.count(true, countRows(left)-taken)
}

// owedLocked returns every committed row not stored yet: waiting, and being written; mu is held.
func (h *heldRows) owedLocked() []heldGroup {
	var all []heldGroup
	for _, g := range h.committed {
		all = append(all, g...)
	}
	for _, g := range h.writing {
		all = append(all, g...)
	}
	return mergeGroups(all)
}

// mergeGroups folds groups of the same table and put_if_absent into one, keeping row order.
func mergeGroups(groups []heldGroup) []heldGroup {
	type key struct {
		table       *openmldb.Table
		putIfAbsent bool
	}
	at := map[key]int{}
	var out []heldGroup
	for _, g := range groups {
		k := key{g.state.table, g.putIfAbsent}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, heldGroup{state: g.state, putIfAbsent: g.putIfAbsent})
			i = len(out) - 1
		}
		out[i].add(g)
	}
	return out
}

// attempting reports whether an attempt at committed rows is under way.
func (h *heldRows) attempting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.writing) > 0
}

// adopt takes rows read back from the journal as committed rows of their own key (a negative
// producer id, which Kafka never assigns) and returns the keys.
func (h *heldRows) adopt(groups []heldGroup) []txnKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.adoptLocked(groups)
}

// adoptLocked is adopt with mu held.
func (h *heldRows) adoptLocked(groups []heldGroup) []txnKey {
	keys := make([]txnKey, len(groups))
	for i, g := range groups {
		h.nextAdopted++
		keys[i] = txnKey{producerID: -h.nextAdopted, epoch: -1}
		h.committed[keys[i]] = []heldGroup{g}
		h.count(true, len(g.rows))
	}
	return keys
}

// committedLeft is how many committed rows are not stored (for Close).
func (h *heldRows) committedLeft() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.committedRows
}

// hasCommitted reports whether committed rows of k wait to be written.
func (h *heldRows) hasCommitted(k txnKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.committed[k]) > 0
}

// fence drops the open transactions of transactionalID that a successful InitProducerId answered
// with (producerID, epoch) has made unfinishable: those of another producer id or an older epoch.
// The coordinator aborts them as it bumps the epoch.
func (h *heldRows) fence(transactionalID string, producerID int64, epoch int16) {
	h.mu.Lock()
	// Two InitProducerId answers can finish out of order (different connections): keep the
	// newer epoch of the same producer id.
	if f, ok := h.fenced[transactionalID]; !ok || f.key.producerID != producerID || f.key.epoch < epoch {
		h.fenced[transactionalID] = fencedBy{key: txnKey{producerID, epoch}, at: time.Now()}
	}
	h.mu.Unlock()
	h.drop(dropFenced, func(k txnKey, tx *heldTxn) bool {
		return tx.transactionalID == transactionalID && (k.producerID != producerID || k.epoch < epoch)
	})
}

// sweep drops transactions held longer than maxAge plus the grace, at most once per tenth of
// maxAge. By then the coordinator has aborted them: no transaction outlives
// transaction.max.timeout.ms, and its clock started before its first batch reached the proxy.
func (h *heldRows) sweep(now time.Time) {
	if h.maxAge <= 0 || now.UnixNano() < h.nextSweep.Load() {
		return
	}
	h.nextSweep.Store(now.Add(h.maxAge / 10).UnixNano())
	limit := h.maxAge + min(expiryGrace, h.maxAge)
	gone := h.drop(dropExpired, func(_ txnKey, tx *heldTxn) bool { return now.Sub(tx.since) > limit })
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, e := range h.expired {
		if now.Sub(e.at) > h.maxAge {
			delete(h.expired, k)
		}
	}
	// A Produce in flight at the fence finishes long before maxAge; the map stays bounded by the
	// transactional ids seen in that time.
	for id, f := range h.fenced {
		if now.Sub(f.at) > h.maxAge {
			delete(h.fenced, id)
		}
	}
	for k, rows := range gone {
		h.expired[k] = expiredTxn{at: now, rows: rows}
	}
}

// expiredRows reports how many rows of transaction k were dropped by age (0: none known).
func (h *heldRows) expiredRows(k txnKey) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expired[k].rows
}

// drop removes the open transactions matching, reports their rows and returns them by
// transaction.
func (h *heldRows) drop(reason string, match func(txnKey, *heldTxn) bool) map[txnKey]int {
	h.mu.Lock()
	var gone map[txnKey]int
	for k, tx := range h.txns {
		if match(k, tx) {
			if gone == nil {
				gone = map[txnKey]int{}
			}
			gone[k] = countRows(tx.groups)
			delete(h.txns, k)
			h.count(false, -gone[k])
		}
	}
	// A commit whose answer never came (its connection ended): Kafka may well have committed it
	// (a coordinator answers a fencing InitProducerId only once it is complete, and a transaction
	// in PrepareCommit never times out), so only its marker decides. Its rows stay open meanwhile.
	var undecided []*pendingCommit
	for k, pc := range h.pending {
		if match(k, &heldTxn{transactionalID: pc.transactionalID, groups: pc.groups, since: pc.since}) {
			delete(h.pending, k)
			h.loaded = append(h.loaded, pc)
			undecided = append(undecided, pc)
		}
	}
	h.mu.Unlock()
	for _, rows := range gone {
		h.dropped(reason, rows)
	}
	if len(undecided) > 0 && h.undecided != nil {
		h.undecided(undecided)
	}
	return gone
}

func countRows(groups []heldGroup) int {
	n := 0
	for _, g := range groups {
		n += len(g.rows)
	}
	return n
}

// beginInitProducerID lets InitProducerId through and, once the coordinator answered, releases
// the rows of the transactions it fenced.
func (t *Tee) beginInitProducerID(req *kmsg.InitProducerIDRequest) proxy.Step {
	if req.TransactionalID == nil {
		return proxy.Step{}
	}
	tid := *req.TransactionalID
	return proxy.Step{Finish: func(_ context.Context, resp kmsg.Response) kmsg.Response {
		if r, ok := resp.(*kmsg.InitProducerIDResponse); ok && r.ErrorCode == 0 {
			t.txns.fence(tid, r.ProducerID, r.ProducerEpoch)
			t.starts.saw(r.ProducerID)
			t.ongoing.forget(r.ProducerID)
		}
		return resp
	}}
}

// beginEndTxn lets EndTxn through and, once the broker has committed, writes the transaction's
// held rows before the client hears of the commit. An abort drops them.
func (t *Tee) beginEndTxn(req *kmsg.EndTxnRequest) proxy.Step {
	k := txnKey{req.ProducerID, req.ProducerEpoch}
	// Once forwarded, the commit may happen whether or not this process hears of it (the client
	// or this process may go away first): the rows become pending, with where to read the
	// outcome back (markerProbe), and are journaled before the request leaves.
	pending, created := false, false
	if req.Commit {
		pending, created = t.txns.pend(k)
	}
	if pending && t.journal != nil {
		if err := t.saveJournal(); err != nil {
			if created {
				t.txns.unpend(k)
			}
			t.log.Error("commit refused with a retriable error: its rows cannot be journaled before it is forwarded",
				"transactional_id", req.TransactionalID, "dir", t.journal.dir, "err", err)
			resp := kmsg.NewPtrEndTxnResponse()
			resp.Version = req.Version
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			return proxy.Step{Local: resp}
		}
	}
	return proxy.Step{Finish: func(ctx context.Context, resp kmsg.Response) kmsg.Response {
		r, ok := resp.(*kmsg.EndTxnResponse)
		if !ok || r.ErrorCode != 0 {
			// Not decided here: the client retries or aborts. An error does not prove the commit
			// did not happen, so pending rows stay pending (pend).
			return resp
		}
		t.starts.saw(req.ProducerID) // its next transaction begins under this process's eyes
		t.ongoing.forget(req.ProducerID)
		if r.Version >= 5 && r.ProducerID >= 0 && r.ProducerID != req.ProducerID {
			t.starts.saw(r.ProducerID) // KIP-890: a new producer id after epoch exhaustion
		}
		if !req.Commit {
			if n := countRows(t.txns.take(k)); n > 0 {
				t.metrics.txnRowsDropped.WithLabelValues(dropAborted).Add(float64(n))
				t.log.Info("transaction aborted, held rows dropped", "transactional_id", req.TransactionalID, "rows", n)
			}
			return resp
		}
		// Rows of an earlier commit of this producer still waiting go along.
		earlier, attempt := t.txns.takeCommitted(k)
		fresh, inJournal := t.txns.commit(k, attempt, t.journal != nil)
		if len(fresh) == 0 {
			if n := t.txns.expiredRows(k); n > 0 {
				// Kafka committed a transaction kafka.transaction_max_timeout says it would
				// have aborted: the setting is below the brokers' transaction.max.timeout.ms.
				t.log.Error("transaction committed after its held rows were dropped as expired; they are not in OpenMLDB",
					"transactional_id", req.TransactionalID, "rows", n, "fix", "set kafka.transaction_max_timeout to the brokers' transaction.max.timeout.ms")
			}
		}
		groups := append(slices.Clip(earlier), fresh...)
		if len(fresh) > 0 && t.journal != nil && !inJournal {
			// Kafka has committed: from now on these rows are owed whatever happens to this
			// process, so they are journaled before the first write (when they were not before
			// the commit was forwarded).
			t.saveJournal()
		}
		wctx, cancel := context.WithTimeout(ctx, t.commitTimeout)
		defer cancel()
		left, firstErr := t.writeHeld(wctx, groups, true, req.TransactionalID)
		t.txns.settle(k, attempt, countRows(earlier), left)
		if len(earlier) > 0 || len(left) > 0 || (len(fresh) > 0 && t.journal != nil) {
			// The rows the proxy owes OpenMLDB changed: before the client hears of the commit,
			// the journal says so.
			t.saveJournal()
		}
		if len(left) == 0 {
			return resp
		}
		// Kafka has committed and cannot take it back. The rows stay held and the proxy keeps
		// writing them (a client cannot be relied on to retry a commit: franz-go refuses to);
		// the client hears that its transaction is not fully stored yet.
		t.retryCommitted(k, req.TransactionalID)
		msg := fmt.Sprintf("transaction committed in Kafka but %d of %d rows are not yet stored in OpenMLDB (%v); the proxy keeps retrying them",
			countRows(left), countRows(groups), firstErr)
		t.log.Error("transaction rows not stored", "transactional_id", req.TransactionalID, "reason", msg)
		r.ErrorCode = kerr.RequestTimedOut.Code
		return r
	}}
}

// stopRetrying ends retryCommitted's goroutine for k.
func (t *Tee) stopRetrying(k txnKey) {
	t.retryMu.Lock()
	delete(t.retrying, k)
	t.retryMu.Unlock()
}

// saveJournal writes the rows the proxy owes OpenMLDB to the journal, if there is one. A failure
// is logged: the rows stay in memory and are still written.
func (t *Tee) saveJournal() error {
	if t.journal == nil {
		return nil
	}
	// Under the journal's lock, so the snapshot written last is the newest.
	t.journal.mu.Lock()
	defer t.journal.mu.Unlock()
	return t.saveJournalLocked()
}

// saveJournalLocked is saveJournal with t.journal.mu held.
func (t *Tee) saveJournalLocked() error {
	if t.journal.lockFile == nil {
		return errJournalClosed // the directory may belong to another proxy now
	}
	skipped, err := t.journal.save(t.txns.journalState())
	if skipped > 0 {
		t.log.Error("rows of committed transactions that cannot be encoded for their table left out of the journal", "rows", skipped)
	}
	t.journalDirty.Store(err != nil)
	if err != nil {
		// Kept in memory and saved again at the next retry round; meanwhile a shutdown's drain
		// waits for them as without a journal.
		t.log.Error("cannot journal rows of committed transactions; retrying at the next round", "dir", t.journal.dir, "err", err)
	}
	return err
}

// errJournalClosed: the tee is closing and has let go of its journal directory.
var errJournalClosed = errors.New("journal closed")

// writeHeld writes held rows, retrying the failed ones with backoff while ctx lasts (when retry),
// and returns what is still not stored with the first error seen. A row no retry can store (it
// does not fit its table, or the table is gone) is dropped with an error log and counted under
// reason "unwritable"; failures count once per call in okp_tee_rows_failed_total.
func (t *Tee) writeHeld(ctx context.Context, groups []heldGroup, retry bool, transactionalID string) (left []heldGroup, firstErr error) {
	backoff := 50 * time.Millisecond
	for {
		left = nil
		for _, g := range groups {
			errs := t.store.Write(ctx, g.state.table, g.rows, openmldb.WriteOptions{PutIfAbsent: g.putIfAbsent, StoredPartitions: g.stored})
			rest := heldGroup{state: g.state, putIfAbsent: g.putIfAbsent}
			name := g.state.table.DB + "." + g.state.table.Name
			lost := 0
			for i, err := range errs {
				switch {
				case err == nil:
				case errors.Is(err, openmldb.ErrRow), errors.Is(err, openmldb.ErrTableNotFound), errors.Is(err, openmldb.ErrUnsupportedTable):
					lost++
					t.log.Error("committed transaction row cannot be written and is dropped", "transactional_id", transactionalID, "table", name, "err", err)
				default:
					// A row some partitions stored goes to the others only next time.
					stored := openmldb.StoredPartitions(err)
					if stored == nil && g.stored != nil {
						stored = g.stored[i]
					}
					rest.addRow(g.rows[i], stored)
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			t.metrics.rowsWritten.WithLabelValues(name).Add(float64(len(g.rows) - len(rest.rows) - lost))
			if lost > 0 {
				t.metrics.txnRowsDropped.WithLabelValues(dropUnwritable).Add(float64(lost))
			}
			if len(rest.rows) > 0 {
				left = append(left, rest)
			}
		}
		if len(left) == 0 || !retry || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		groups = left
	}
	for _, g := range left {
		t.metrics.rowsFailed.WithLabelValues(g.state.table.DB + "." + g.state.table.Name).Add(float64(len(g.rows)))
	}
	return left, firstErr
}

// retryCommitted keeps writing the committed rows of k on a goroutine until none are left or the
// tee closes, backing off up to half a minute between rounds. One runs per key at a time; an
// EndTxn of the same producer meanwhile takes the rows along with its own.
func (t *Tee) retryCommitted(k txnKey, transactionalID string) {
	t.retryMu.Lock()
	if t.retrying[k] || t.retryClosed {
		t.retryMu.Unlock()
		return
	}
	t.retrying[k] = true
	t.bg.Add(1) // under retryMu, so never after Close has begun waiting
	t.retryMu.Unlock()
	go func() {
		defer t.bg.Done()
		backoff := time.Second
		for {
			wait := backoff
			select {
			case <-t.draining:
				if t.journal != nil && !t.journalDirty.Load() {
					// The rows are in the journal and the next start writes them; an attempt
					// begun now would be cut off by Close with Puts already out, which may
					// land and then be written again from the journal. While the last journal
					// write failed they may not be there: keep writing them, as without one
					// (Drain waits for them then).
					t.stopRetrying(k)
					return
				}
				wait = min(backoff, 200*time.Millisecond) // shutting down: try while there is time
			default:
			}
			select {
			case <-t.bgCtx.Done():
				t.stopRetrying(k)
				return
			case <-time.After(wait):
			}
			groups, attempt := t.txns.takeCommitted(k)
			ctx, cancel := context.WithTimeout(t.bgCtx, DefaultWriteTimeout)
			left, err := t.writeHeld(ctx, groups, false, transactionalID)
			cancel()
			t.txns.settle(k, attempt, countRows(groups), left)
			if countRows(left) != countRows(groups) || t.journalDirty.Load() {
				t.saveJournal() // also retries a save that failed
			}
			if len(left) > 0 {
				t.log.Error("committed transaction rows still not stored; retrying", "transactional_id", transactionalID,
					"rows", countRows(left), "err", err, "next_try", min(2*backoff, 30*time.Second))
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			if len(groups) > 0 {
				t.log.Info("committed transaction rows stored after retrying", "transactional_id", transactionalID, "rows", countRows(groups))
			}
			// Rows put back meanwhile by a commit of the same producer (which then found this
			// goroutine running and started none) are this goroutine's to write.
			t.retryMu.Lock()
			if t.txns.hasCommitted(k) {
				t.retryMu.Unlock()
				backoff = time.Second
				continue
			}
			delete(t.retrying, k)
			t.retryMu.Unlock()
			return
		}
	}()
}
