package tee

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startResolving reads the outcome of pending commits whose EndTxn answer will never come here
// (resolvePending, on t.bg). After Close has begun it does nothing: the journal, if any, keeps
// them for the next start.
func (t *Tee) startResolving(pcs []*pendingCommit) {
	t.retryMu.Lock()
	defer t.retryMu.Unlock()
	if t.retryClosed {
		return
	}
	t.bg.Add(1) // under retryMu, so never after Close has begun waiting
	go t.resolvePending(pcs)
}

// resolvePending decides transactions whose commit went to the broker without this process
// learning the outcome: an earlier run journaled them and stopped, or the client's connection
// ended before the answer and the transaction was then fenced or expired. It reads each one's
// partition from its batch's offset, control records included. The batch of the producer id
// must still be at that offset (else compaction removed it, and a later marker could be taken
// for its own); the first marker of the producer id after it decides: COMMIT (with the
// transaction's epoch, or the next one, transaction version 2 bumping it at the end) writes the
// rows, ABORT (that epoch or later) drops them. Until then the rows stay open, and in the journal if there is one; they are
// left undecided, with an error log, where the log cannot tell.
func (t *Tee) resolvePending(pcs []*pendingCommit) {
	defer t.bg.Done()
	from := map[string]map[int32]kgo.Offset{}
	starts := map[string]map[int32]int64{}
	for _, pc := range pcs {
		p := pc.probe
		if from[p.topic] == nil {
			from[p.topic], starts[p.topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		if at, ok := starts[p.topic][p.partition]; !ok || p.offset < at {
			starts[p.topic][p.partition] = p.offset
			from[p.topic][p.partition] = kgo.NewOffset().At(p.offset)
		}
	}
	// NoResetOffset: an offset gone to retention is reported, never silently replaced by another
	// position.
	cl, err := kgo.NewClient(append(t.kafkaOpts(), kgo.ConsumePartitions(from), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()))...)
	if err != nil {
		t.log.Error("cannot read the outcome of transactions whose commit answer was not seen; their rows stay undecided", "err", err)
		for _, pc := range pcs {
			t.txns.giveUp(pc, fmt.Sprintf("its partition cannot be read: %v", err))
		}
		return
	}
	defer cl.Close()
	type watch struct {
		pc      *pendingCommit
		started bool // the transaction's batch was seen at the probe offset
	}
	left := make([]*watch, len(pcs))
	for i, pc := range pcs {
		left[i] = &watch{pc: pc}
	}
	stop := func(i int) { left = append(left[:i], left[i+1:]...) }
	for len(left) > 0 {
		fetches := cl.PollFetches(t.bgCtx)
		if t.bgCtx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, kerr.OffsetOutOfRange) {
				// Retention took the log from under the reader: kgo will not go on. The
				// transactions at the offset this read began at (all the error proves gone) are
				// given up; the partition is read again from the next one waiting there, whose
				// batch may well still be there (if not, the next error gives it up in turn).
				at := starts[topic][partition]
				next := int64(-1)
				for i := 0; i < len(left); i++ {
					p := left[i].pc.probe
					if p.topic != topic || p.partition != partition {
						continue
					}
					if p.offset > at {
						if next < 0 || p.offset < next {
							next = p.offset
						}
						continue
					}
					t.log.Error("cannot tell how a transaction ended: its batch's offset is out of range (retention); its rows stay undecided",
						"transactional_id", left[i].pc.transactionalID, "rows", countRows(left[i].pc.groups), "topic", topic, "partition", partition, "offset", p.offset)
					t.txns.giveUp(left[i].pc, fmt.Sprintf("offset %d of %s partition %d is out of range (retention took its batch)", p.offset, topic, partition))
					stop(i)
					i--
				}
				if next >= 0 {
					starts[topic][partition] = next
					cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {partition: {Epoch: -1, Offset: next}}})
				}
				return
			}
			if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
				// No READ on the topic: no retry reads the marker until an operator grants it.
				// The transactions waiting here are reported undecidable (the metric, and an
				// operator may settle them), and the reader goes on, so a grant still decides
				// those not settled meanwhile.
				for _, w := range left {
					if p := w.pc.probe; p.topic == topic && p.partition == partition {
						t.txns.giveUpOnce(w.pc, fmt.Sprintf("its partition %s %d cannot be read: %v", topic, partition, err), func() {
							t.log.Error("cannot read the outcome of transactions whose commit answer was not seen: their partition cannot be read; their rows stay undecided",
								"transactional_id", w.pc.transactionalID, "rows", countRows(w.pc.groups), "topic", topic, "partition", partition, "err", err)
						})
					}
				}
				return
			}
			if ok, _ := t.logLimit.Allow(fmt.Sprintf("resolve %s %d", topic, partition)); ok {
				t.log.Error("reading the outcome of a transaction whose commit answer was not seen; its rows stay undecided meanwhile",
					"topic", topic, "partition", partition, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			for i := 0; i < len(left); i++ {
				w := left[i]
				p := w.pc.probe
				if p.topic != r.Topic || p.partition != r.Partition || w.pc.key.producerID != r.ProducerID || r.Offset < p.offset {
					continue
				}
				if !w.started {
					if r.Offset != p.offset || r.Attrs.IsControl() {
						t.log.Error("cannot tell how a transaction ended: its batch is no longer in the log (compacted or deleted); its rows stay undecided",
							"transactional_id", w.pc.transactionalID, "rows", countRows(w.pc.groups), "topic", p.topic, "partition", p.partition, "offset", p.offset)
						t.txns.giveUp(w.pc, fmt.Sprintf("its batch is no longer at offset %d of %s partition %d (compacted or deleted)", p.offset, p.topic, p.partition))
						stop(i)
						i--
						continue
					}
					w.started = true
					continue
				}
				if !r.Attrs.IsControl() {
					continue
				}
				var key kmsg.ControlRecordKey
				if err := key.ReadFrom(r.Key); err != nil || (key.Type != kmsg.ControlRecordKeyTypeCommit && key.Type != kmsg.ControlRecordKeyTypeAbort) {
					continue
				}
				// A commit's marker carries the transaction's epoch, or the next one under KIP-890;
				// an abort's may carry a later one still (a fence bumps the epoch before it aborts).
				// Anything else is not trusted to be this transaction's outcome.
				commit := key.Type == kmsg.ControlRecordKeyTypeCommit
				if e := w.pc.key.epoch; r.ProducerEpoch < e || (commit && r.ProducerEpoch > e+1) {
					t.log.Error("cannot tell how a transaction ended: the first marker of its producer id after its batch has another epoch; its rows stay undecided",
						"transactional_id", w.pc.transactionalID, "rows", countRows(w.pc.groups), "epoch", e, "marker_epoch", r.ProducerEpoch)
					t.txns.giveUp(w.pc, fmt.Sprintf("the first marker of its producer id after its batch (offset %d) has epoch %d, the transaction %d", r.Offset, r.ProducerEpoch, e))
					stop(i)
					i--
					continue
				}
				t.decidePending(w.pc, commit, r.Offset)
				stop(i)
				i--
			}
		})
		// Transactions an operator settled meanwhile are not waited for.
		for i := 0; i < len(left); i++ {
			if !t.txns.isLoaded(left[i].pc) {
				stop(i)
				i--
			}
		}
		// Partitions no transaction waits on any more are not read further.
		var done map[string][]int32
		for topic, parts := range starts {
			for part := range parts {
				waiting := false
				for _, w := range left {
					if w.pc.probe.topic == topic && w.pc.probe.partition == part {
						waiting = true
						break
					}
				}
				if !waiting {
					if done == nil {
						done = map[string][]int32{}
					}
					done[topic] = append(done[topic], part)
					delete(parts, part)
				}
			}
		}
		if done != nil {
			cl.PauseFetchPartitions(done)
		}
	}
}

// decidePending applies the marker read for a pending commit.
func (t *Tee) decidePending(pc *pendingCommit, committed bool, markerOffset int64) {
	keys, ok := t.txns.resolve(pc, committed)
	if !ok {
		return // an operator settled it meanwhile
	}
	rows := countRows(pc.groups)
	outcome := "aborted in Kafka; its rows are dropped"
	if committed {
		outcome = "committed in Kafka; writing its rows"
	}
	t.log.Info("transaction whose commit answer was not seen here was "+outcome, "transactional_id", pc.transactionalID,
		"rows", rows, "topic", pc.probe.topic, "partition", pc.probe.partition, "marker_offset", markerOffset)
	t.saveJournal()
	for _, k := range keys {
		t.retryCommitted(k, pc.transactionalID)
	}
}
