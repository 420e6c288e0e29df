package tee

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// resolvePending decides the transactions an earlier run journaled while their EndTxn commit was
// at the broker (a crash there left it unknown whether Kafka committed them): it reads each
// transaction's partition from its batch's offset, control records included, until the first
// marker of its producer id. COMMIT: the rows are written like any committed rows the journal
// kept. ABORT: they are dropped. Until a marker comes (the transaction is still open, or its
// markers are not written yet) the rows stay in the journal; at Close they are left for the next
// start. It runs on t.bg.
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
	// position, where an older marker of the same producer could be read as this one's.
	cl, err := kgo.NewClient(append(t.kafkaOpts(), kgo.ConsumePartitions(from), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()))...)
	if err != nil {
		t.log.Error("cannot read the outcome of journaled transactions; their rows stay in the journal for the next start", "err", err)
		return
	}
	defer cl.Close()
	left := append([]*pendingCommit(nil), pcs...)
	for len(left) > 0 {
		fetches := cl.PollFetches(t.bgCtx)
		if t.bgCtx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if ok, _ := t.logLimit.Allow(fmt.Sprintf("resolve %s %d", topic, partition)); ok {
				t.log.Error("reading a journaled transaction's outcome; its rows stay in the journal meanwhile", "topic", topic, "partition", partition, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				return
			}
			var key kmsg.ControlRecordKey
			if err := key.ReadFrom(r.Key); err != nil {
				return
			}
			for i := 0; i < len(left); i++ {
				pc := left[i]
				if pc.probe.topic != r.Topic || pc.probe.partition != r.Partition || pc.key.producerID != r.ProducerID || r.Offset <= pc.probe.offset {
					continue
				}
				t.decidePending(pc, key.Type == kmsg.ControlRecordKeyTypeCommit, r.Offset)
				left = append(left[:i], left[i+1:]...)
				i--
			}
		})
	}
}

// decidePending applies the marker read for a journaled transaction.
func (t *Tee) decidePending(pc *pendingCommit, committed bool, markerOffset int64) {
	keys := t.txns.resolve(pc, committed)
	rows := countRows(pc.groups)
	if committed {
		t.log.Info("journaled transaction was committed in Kafka; writing its rows", "transactional_id", pc.transactionalID,
			"rows", rows, "topic", pc.probe.topic, "partition", pc.probe.partition, "marker_offset", markerOffset)
	} else {
		t.log.Info("journaled transaction was aborted in Kafka; its rows are dropped", "transactional_id", pc.transactionalID,
			"rows", rows, "topic", pc.probe.topic, "partition", pc.probe.partition, "marker_offset", markerOffset)
	}
	t.saveJournal()
	for _, k := range keys {
		t.retryCommitted(k, pc.transactionalID)
	}
}
