package tee

import (
	"context"
	"fmt"
	"sync"

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
}

// heldRows keeps the rows of open transactions until their EndTxn: OpenMLDB has no
// transactions, so rows become visible only once Kafka has committed them, and never if the
// transaction aborts.
type heldRows struct {
	mu   sync.Mutex
	txns map[txnKey][]heldGroup
}

func newHeldRows() *heldRows { return &heldRows{txns: map[txnKey][]heldGroup{}} }

func (h *heldRows) hold(producerID int64, epoch int16, st *tableState, putIfAbsent bool, rows []openmldb.Row) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := txnKey{producerID, epoch}
	h.txns[k] = append(h.txns[k], heldGroup{state: st, putIfAbsent: putIfAbsent, rows: rows})
}

// take removes and returns the transaction's rows.
func (h *heldRows) take(k txnKey) []heldGroup {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.txns[k]
	delete(h.txns, k)
	return g
}

// putBack returns rows that could not be written, for the client's EndTxn retry.
func (h *heldRows) putBack(k txnKey, g []heldGroup) {
	if len(g) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.txns[k] = append(g, h.txns[k]...)
}

func countRows(groups []heldGroup) int {
	n := 0
	for _, g := range groups {
		n += len(g.rows)
	}
	return n
}

// beginEndTxn lets EndTxn through and, once the broker has committed, writes the transaction's
// held rows before the client hears of the commit. An abort drops them.
func (t *Tee) beginEndTxn(req *kmsg.EndTxnRequest) proxy.Step {
	k := txnKey{req.ProducerID, req.ProducerEpoch}
	return proxy.Step{Finish: func(ctx context.Context, resp kmsg.Response) kmsg.Response {
		r, ok := resp.(*kmsg.EndTxnResponse)
		if !ok || r.ErrorCode != 0 {
			return resp // the outcome is not decided yet; the client retries or aborts
		}
		if !req.Commit {
			if n := countRows(t.txns.take(k)); n > 0 {
				t.metrics.txnRowsDropped.Add(float64(n))
				t.log.Info("transaction aborted, held rows dropped", "transactional_id", req.TransactionalID, "rows", n)
			}
			return resp
		}
		ctx, cancel := context.WithTimeout(ctx, DefaultWriteTimeout)
		defer cancel()
		groups := t.txns.take(k)
		var left []heldGroup
		var firstErr error
		failed := 0
		for _, g := range groups {
			errs := t.store.Write(ctx, g.state.table, g.rows, openmldb.WriteOptions{PutIfAbsent: g.putIfAbsent})
			rest := heldGroup{state: g.state, putIfAbsent: g.putIfAbsent}
			for i, err := range errs {
				if err != nil {
					rest.rows = append(rest.rows, g.rows[i])
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			name := g.state.table.DB + "." + g.state.table.Name
			t.metrics.rowsWritten.WithLabelValues(name).Add(float64(len(g.rows) - len(rest.rows)))
			if len(rest.rows) > 0 {
				failed += len(rest.rows)
				t.metrics.rowsFailed.WithLabelValues(name).Add(float64(len(rest.rows)))
				left = append(left, rest)
			}
		}
		if failed == 0 {
			return resp
		}
		// Kafka has committed; the rows stay held and the client's EndTxn retry (which the broker
		// answers as an already-completed commit) writes them.
		t.txns.putBack(k, left)
		msg := fmt.Sprintf("transaction committed in Kafka but %d of %d rows are not yet stored in OpenMLDB (%v); retry EndTxn to write them",
			failed, countRows(groups), firstErr)
		t.log.Error("transaction rows not stored", "transactional_id", req.TransactionalID, "reason", msg)
		r.ErrorCode = kerr.RequestTimedOut.Code
		return r
	}}
}
