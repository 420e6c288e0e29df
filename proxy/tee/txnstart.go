package tee

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// A transaction's rows are held in memory, so a transaction that began before this process
// started (the proxy was restarted while it was open) may have produced rows this process never
// held. Committing it would store only the batches produced since, silently leaving the rest out
// of OpenMLDB. The commit of a transaction whose start this process did not see is therefore
// checked with the transaction coordinator (DescribeTransactions) and refused when the
// transaction was already open when this process started and writes to a teed topic: the
// producer aborts, and Kafka and OpenMLDB stay equal. "Already open" comes from the coordinators'
// list of ongoing transactions taken at start (listOngoing); only when that list is unavailable
// does the coordinator's clock decide, against this process's start plus startSkew (a broker
// clock ahead by more than that and the restart's own gap lets such a commit through, and a
// transaction begun within startSkew of the start is refused once).

// defaultStartSkew is how much later than this process's start a transaction must have begun, by
// the coordinator's clock, to count as begun after it when the list taken at start is unavailable:
// it absorbs clock differences between the brokers and the proxy.
const defaultStartSkew = 2 * time.Second

// maxStartsTracked bounds txnStarts; forgetting is safe (the coordinator is asked instead).
const maxStartsTracked = 100_000

// txnStarts remembers the transactional producer ids whose current transaction this process saw
// begin: it passed their InitProducerId, or the EndTxn that ended their previous transaction.
type txnStarts struct {
	mu   sync.Mutex
	seen map[int64]bool
}

// saw records that the next transaction of producerID begins under this process's eyes. Past
// maxStartsTracked producers, about half are forgotten (their next commit asks the coordinator).
func (s *txnStarts) saw(producerID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[int64]bool{}
	}
	if len(s.seen) >= maxStartsTracked {
		n := 0
		for id := range s.seen { // map order is random: an arbitrary half
			if n++; n > maxStartsTracked/2 {
				break
			}
			delete(s.seen, id)
		}
	}
	s.seen[producerID] = true
}

// known reports whether the current transaction of producerID began under this process's eyes.
func (s *txnStarts) known(producerID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[producerID]
}

// ongoingAtStart is the set of producer ids whose transaction was ongoing when this process
// started, as the coordinators listed them (ListTransactions): the transactions whose commits may
// lack rows held by a previous process. It replaces the clock comparison when it could be listed.
type ongoingAtStart struct {
	done chan struct{} // closed when the listing is over
	err  error         // the listing failed: fall back to the coordinator's start time (set before done)

	mu   sync.Mutex
	pids map[int64]bool
	// ended are producers whose transaction ended through this process before the listing
	// came back: their next transaction is not the one that was open at start.
	ended map[int64]bool
}

// forget drops producerID from the set: its transaction open at start has ended here.
func (o *ongoingAtStart) forget(producerID int64) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pids != nil {
		delete(o.pids, producerID)
		return
	}
	if o.ended == nil {
		o.ended = map[int64]bool{}
	}
	o.ended[producerID] = true
}

// listOngoing lists the transactions ongoing now, in the background (it must not delay the start
// when the brokers are slow or unreachable); commits that need it wait for it.
func (t *Tee) listOngoing() *ongoingAtStart {
	o := &ongoingAtStart{done: make(chan struct{})}
	if len(t.bootstrap) == 0 {
		o.err = errors.New("no kafka.bootstrap")
		close(o.done)
		return o
	}
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		defer close(o.done)
		adm, err := t.admin()
		if err != nil {
			o.err = err
			return
		}
		ctx, cancel := context.WithTimeout(t.bgCtx, 10*time.Second)
		defer cancel()
		listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
		if err != nil {
			o.err = err
			t.log.Warn("cannot list the transactions open at start; commits of transactions whose start this proxy did not see are judged by the coordinator's clock", "err", err)
			return
		}
		o.mu.Lock()
		o.pids = map[int64]bool{}
		for _, l := range listed {
			if l.State == "Ongoing" && !o.ended[l.ProducerID] { // brokers before 3.0 ignore the filter
				o.pids[l.ProducerID] = true
			}
		}
		n := len(o.pids)
		o.ended = nil
		o.mu.Unlock()
		if n > 0 {
			t.log.Info("transactions open at start: their commits through this proxy are checked for rows a previous process held", "transactions", n)
		}
	}()
	return o
}

// ongoingBefore reports whether producerID's transaction was ongoing when this process started,
// and whether that is known (false: the listing failed or ctx ended first).
func (t *Tee) ongoingBefore(ctx context.Context, producerID int64) (ongoing, known bool) {
	o := t.ongoing
	if o == nil {
		return false, false
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		return false, false
	}
	if o.err != nil {
		return false, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pids[producerID], true
}

// holds reports whether rows of transaction k are held.
func (h *heldRows) holds(k txnKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ht := h.txns[k]
	return ht != nil && len(ht.groups) > 0
}

// refuseUnseenCommit answers the commit of a transaction whose start this process did not see,
// when that transaction may have produced teed rows this process never held. It returns ok false
// when the commit may go through.
func (t *Tee) refuseUnseenCommit(ctx context.Context, req *kmsg.EndTxnRequest) (proxy.Step, bool) {
	if !req.Commit || t.starts.known(req.ProducerID) {
		return proxy.Step{}, false
	}
	why, err := t.unseenCommitRisk(ctx, req)
	if err == nil && why == "" {
		return proxy.Step{}, false
	}
	if err != nil {
		why = fmt.Sprintf("cannot ask the transaction coordinator whether it began before this proxy started (%v)", err)
	}
	t.metrics.txnCommitsRefused.Inc()
	t.log.Error("transaction commit refused: abort and retry the transaction", "transactional_id", req.TransactionalID,
		"producer_id", req.ProducerID, "epoch", req.ProducerEpoch, "reason", why)
	// UNKNOWN_PRODUCER_ID, not TRANSACTION_ABORTABLE: clients before KIP-890's version 2 know it
	// as abortable on EndTxn (franz-go and the Java producer recover with an epoch bump, which
	// aborts the transaction), while TRANSACTION_ABORTABLE is fatal to them.
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ErrorCode = kerr.UnknownProducerID.Code
	return proxy.Step{Local: resp}, true
}

// unseenCommitRisk asks the coordinator about the transaction of req and says why committing it
// could leave rows out of OpenMLDB ("" when it cannot).
func (t *Tee) unseenCommitRisk(ctx context.Context, req *kmsg.EndTxnRequest) (string, error) {
	adm, err := t.admin()
	if err != nil {
		return "", err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	described, err := adm.DescribeTransactions(dctx, req.TransactionalID)
	if err != nil {
		return "", err
	}
	d, ok := described[req.TransactionalID]
	if !ok {
		return "", fmt.Errorf("transactional id %q not described", req.TransactionalID)
	}
	if d.Err != nil {
		return "", d.Err
	}
	began := time.UnixMilli(d.StartTimestamp)
	switch {
	case d.ProducerID != req.ProducerID || d.ProducerEpoch != req.ProducerEpoch:
		// Not this producer's current transaction: the coordinator refuses the EndTxn itself.
		return "", nil
	case d.State == "PrepareCommit" || d.State == "CompleteCommit":
		// A retried EndTxn whose first attempt reached the coordinator through the previous
		// process: committed already, nothing to decide, but the rows that process held may be
		// missing (unless its journal had them).
		t.log.Warn("commit retried through this proxy after the previous process forwarded it; rows that process held are in OpenMLDB only if its journal kept them",
			"transactional_id", req.TransactionalID, "producer_id", req.ProducerID)
		return "", nil
	case d.State != "Ongoing":
		return "", nil // aborting or over: the coordinator answers
	}
	if ongoing, known := t.ongoingBefore(ctx, req.ProducerID); known {
		if !ongoing {
			return "", nil // begun after this process started: every batch came through it
		}
	} else if !began.Before(t.startedAt.Add(t.startSkew)) {
		return "", nil // by the coordinator's clock, begun after this process started
	}
	k := txnKey{req.ProducerID, req.ProducerEpoch}
	teed := ""
	if t.txns.holds(k) {
		teed = "its batches held here"
	}
	sinks := *t.sinks.Load()
	for _, topic := range d.Topics.Topics() {
		// Internal topics (__consumer_offsets of a TxnOffsetCommit) are never teed.
		if teed == "" && !strings.HasPrefix(topic, "__") && config.SinkFor(sinks, topic) != nil {
			teed = "topic " + topic
		}
	}
	if teed == "" {
		return "", nil // no teed topic in it: no rows to lose
	}
	return fmt.Sprintf("the transaction began at %s, before this proxy started at %s, and writes to a teed topic (%s): rows it produced through the previous proxy process were never held here, and committing would leave them out of OpenMLDB",
		began.UTC().Format(time.RFC3339Nano), t.startedAt.UTC().Format(time.RFC3339Nano), teed), nil
}

// admin returns the Kafka admin client the tee asks the transaction coordinator with, made on
// first use.
func (t *Tee) admin() (*kadm.Client, error) {
	t.adminMu.Lock()
	defer t.adminMu.Unlock()
	select {
	case <-t.closed:
		return nil, errors.New("tee closed")
	default:
	}
	if t.adminCl == nil {
		cl, err := kgo.NewClient(t.kafkaOpts()...)
		if err != nil {
			return nil, fmt.Errorf("kafka admin client: %w", err)
		}
		t.adminCl = cl
	}
	return kadm.NewClient(t.adminCl), nil
}
