package tee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// Error codes the tee answers with, chosen for how every client reacts to them:
//   - INVALID_RECORD (87): a record can never become a row; not retriable, and record_errors
//     (Produce v8+) names each bad record.
//   - NOT_ENOUGH_REPLICAS (19): OpenMLDB cannot be reached before the batch was forwarded;
//     nothing was appended, the client retries.
//   - NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): the broker appended the batch but some rows are not
//     in OpenMLDB yet. Kafka defines it as "written to the log, but to fewer replicas than
//     required", which is exactly this state; librdkafka, franz-go and the Java producer all
//     retry it, and an idempotent retry is deduplicated by the broker while the ledger writes
//     only the missing rows.
var (
	codeInvalidRecord          = kerr.InvalidRecord.Code
	codeCorrupt                = kerr.CorruptMessage.Code
	codeUnsupportedFormat      = kerr.UnsupportedForMessageFormat.Code
	codeOpenMLDBUnavailable    = kerr.NotEnoughReplicas.Code
	codeRowsMissingAfterAppend = kerr.NotEnoughReplicasAfterAppend.Code
)

// partitionPlan is what the tee decided for one teed partition before it is forwarded.
type partitionPlan struct {
	db        string
	topic     string
	partition int32
	sink      *config.Sink
	state     *tableState

	rows     []openmldb.Row
	nRecords int
	invalid  []badRecord
	// bytes is the size of the partition's records in the request: what a write of its rows
	// that outlives the request keeps counted against the proxy's queued bytes (see expire).
	bytes int

	// Identity of the (first) batch, for the ledger and transactions.
	producerID    int64
	epoch         int16
	baseSequence  int32
	transactional bool
	// transactionalID is the request's transactional id ("" for none).
	transactionalID string

	// onLoop: planned on the proxy's event loop, where a table must not be created (a DDL round
	// trip); beginProduceOnLoop checked the tables exist.
	onLoop bool

	// reject is set when the partition must not reach the broker: code and message for the
	// client, with per-record errors when records are at fault.
	reject        bool
	rejectCode    int16
	rejectMessage string
}

// badRecord is an invalid record: its position in the partition and why it was refused.
type badRecord struct {
	index   int // position among the partition's records, across batches
	inBatch int // position within its batch (record_errors' batch_index)
	err     error
	key     []byte
	value   []byte
}

func (p *partitionPlan) idempotent() bool { return p.producerID >= 0 && p.baseSequence >= 0 }

func (p *partitionPlan) tableName() string {
	return p.db + "." + p.sink.TableFor(p.topic)
}

// A Produce's Begin runs on the proxy's event loop only with at most maxRecordBytesOnLoop bytes
// and maxRowsOnLoop records (all teed partitions together, uncompressed): some 50 µs of decoding
// and converting seed-shaped records, and no more rows than a Finish encodes on the loop.
const maxRecordBytesOnLoop = 32 << 10

// beginProduceOnLoop plans req on the event loop when that cannot wait or take long: every teed
// partition small and uncompressed (decompression can multiply the work), and no table that
// would have to be created first (a DDL round trip to the nameserver).
func (t *Tee) beginProduceOnLoop(ctx context.Context, c proxy.ConnInfo, req *kmsg.ProduceRequest) (proxy.Step, bool) {
	sinks := t.topicSinks(req)
	nbytes, nrec := 0, 0
	for ti := range req.Topics {
		tp := &req.Topics[ti]
		sink := sinks[ti]
		if sink == nil {
			continue
		}
		if sink.AutoCreate {
			if _, err := t.store.Table(t.db, sink.TableFor(tp.Topic)); err != nil {
				return proxy.Step{}, false
			}
		}
		for pi := range tp.Partitions {
			records := tp.Partitions[pi].Records
			count, ok := protocol.UncompressedRecords(records)
			nbytes += len(records)
			nrec += count
			if !ok || nbytes > maxRecordBytesOnLoop || nrec > maxRowsOnLoop {
				return proxy.Step{}, false
			}
		}
	}
	return t.beginProduce(ctx, c, req, sinks, true), true
}

// topicSinks resolves the sink of each of req's topics (nil: not teed) under one sink mapping,
// the same for the whole request even across a Reload.
func (t *Tee) topicSinks(req *kmsg.ProduceRequest) []*config.Sink {
	mapping := *t.sinks.Load()
	out := make([]*config.Sink, len(req.Topics))
	for ti := range req.Topics {
		out[ti] = config.SinkFor(mapping, req.Topics[ti].Topic)
	}
	return out
}

// beginProduce decodes and converts the teed partitions of req, sinks[i] being the sink of
// req.Topics[i] (topicSinks), and returns the Step that writes them.
func (t *Tee) beginProduce(ctx context.Context, c proxy.ConnInfo, req *kmsg.ProduceRequest, sinks []*config.Sink, onLoop bool) proxy.Step {
	start := time.Now()
	var plans []*partitionPlan
	total := 0
	heldPlanned := 0 // rows of this request's transactional batches that will be held
	for ti := range req.Topics {
		tp := &req.Topics[ti]
		total += len(tp.Partitions)
		sink := sinks[ti]
		if sink == nil {
			continue
		}
		for pi := range tp.Partitions {
			p := t.planPartition(ctx, sink, tp.Topic, tp.Partitions[pi].Partition, tp.Partitions[pi].Records, onLoop)
			heldPlanned += t.boundHeldRows(p, heldPlanned)
			if req.TransactionID != nil {
				p.transactionalID = *req.TransactionID
			}
			plans = append(plans, p)
		}
	}
	t.txns.sweep(time.Now())
	if len(plans) == 0 {
		return proxy.Step{}
	}
	var rejected []*partitionPlan
	for _, p := range plans {
		if p.reject {
			rejected = append(rejected, p)
			t.metrics.batchesRejected.WithLabelValues(p.tableName()).Inc()
			t.logRejected(c, p)
		}
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 || req.Acks == 0 {
		timeout = DefaultWriteTimeout
	}
	deadline := start.Add(timeout)
	var step proxy.Step
	if len(rejected) > 0 {
		if len(rejected) == total {
			// Nothing reaches the broker. (With acks=0 the proxy drops this answer: the client
			// expects none, and the rejection is only logged and counted.)
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			addRejections(resp, rejected)
			return proxy.Step{Local: resp}
		}
		step.Forward = withoutPartitions(req, rejected)
	}
	rows := 0
	for _, p := range plans {
		rows += len(p.rows)
	}
	step.FinishAsync = func(ctx context.Context, resp kmsg.Response, done func(kmsg.Response)) {
		pr, _ := resp.(*kmsg.ProduceResponse)
		finish := func(onLoop bool) {
			t.finishProduce(ctx, c, plans, pr, deadline, routeOf(c, onLoop), func() {
				if pr == nil {
					done(resp)
					return
				}
				addRejections(pr, rejected)
				t.metrics.produceLatency.WithLabelValues("tee").Observe(time.Since(start).Seconds())
				done(pr)
			})
		}
		// Encoding a large batch's rows takes long enough to hold up the loop's other
		// connections, so that runs on a goroutine; c.Serial keeps the connection's requests
		// in order either way, so a partition's rows are issued in offset order across
		// pipelined requests too.
		if c.Serial == nil {
			finish(true)
			return
		}
		c.Serial.Run(rows <= maxRowsOnLoop, finish)
	}
	return step
}

// planPartition decodes and converts one partition's records. It never returns nil.
func (t *Tee) planPartition(ctx context.Context, s *config.Sink, topic string, partition int32, records []byte, onLoop bool) *partitionPlan {
	p := &partitionPlan{db: t.db, topic: topic, partition: partition, sink: s, producerID: -1, baseSequence: -1, onLoop: onLoop, bytes: len(records)}
	batches, err := protocol.DecodeBatches(records, t.dec)
	if err != nil {
		p.reject, p.rejectCode = true, codeCorrupt
		if errors.Is(err, protocol.ErrLegacyMessageFormat) {
			p.rejectCode = codeUnsupportedFormat
		}
		p.rejectMessage = fmt.Sprintf("topic %s partition %d: cannot decode record batch: %v", topic, partition, err)
		return p
	}
	// The record scratch (one value per field) is reused across requests: per partition it was
	// a tenth of the tee's allocations at 10,000 records/s.
	rec := t.records.Get().(*connect.Record)
	defer t.records.Put(rec)
	// Rows of the partition share one backing array, sized once the table's width is known.
	var arena []openmldb.Value
	nrec := 0
	for _, b := range batches {
		nrec += len(b.Records)
	}
	for bi, b := range batches {
		if bi == 0 {
			p.producerID, p.epoch, p.baseSequence, p.transactional = b.ProducerID, b.ProducerEpoch, b.FirstSequence, b.Transactional
		}
		if b.Control {
			p.nRecords += len(b.Records)
			continue
		}
		for ri := range b.Records {
			r := &b.Records[ri]
			idx := p.nRecords
			p.nRecords++
			if r.Value == nil {
				t.metrics.tombstones.WithLabelValues(p.tableName()).Inc()
				continue
			}
			if p.state != nil && cap(arena)-len(arena) < len(p.state.table.Columns) {
				arena = make([]openmldb.Value, 0, (nrec-idx)*len(p.state.table.Columns))
			}
			row, err := t.convert(ctx, p, rec, r.Value, arena[len(arena):len(arena):cap(arena)])
			if err != nil {
				if isUnavailable(err) {
					p.reject, p.rejectCode = true, codeOpenMLDBUnavailable
					p.rejectMessage = fmt.Sprintf("OpenMLDB table %s is not reachable: %v", p.tableName(), err)
					return p
				}
				// Copies: the request's bytes go back to the proxy's pool once the Finish is
				// answered, while a dead-letter produce may still be starting (or, past the
				// deadline, still be running) on a goroutine of its own.
				p.invalid = append(p.invalid, badRecord{index: idx, inBatch: ri, err: err, key: bytes.Clone(r.Key), value: bytes.Clone(r.Value)})
				continue
			}
			if p.rows == nil {
				p.rows = make([]openmldb.Row, 0, nrec-idx)
			}
			p.rows = append(p.rows, row)
			if cap(arena)-len(arena) >= len(row) { // the converter filled the arena's next slots
				arena = arena[:len(arena)+len(row)]
			}
		}
	}
	if len(p.invalid) > 0 {
		t.metrics.rowsRejected.WithLabelValues(p.tableName()).Add(float64(len(p.invalid)))
		if s.OnInvalid == config.OnInvalidReject {
			p.reject, p.rejectCode = true, codeInvalidRecord
			first := p.invalid[0]
			p.rejectMessage = fmt.Sprintf("%d of %d records cannot be written to OpenMLDB table %s, nothing of this batch was stored; record %d: %v",
				len(p.invalid), p.nRecords, p.tableName(), first.index, first.err)
			p.rows = nil
		}
	}
	return p
}

// boundHeldRows refuses a transactional batch whose rows would take the rows held for open
// transactions past limits.max_held_transaction_rows, counting planned, the rows of the same
// request's batches admitted before it (they are held only once the broker has answered), and
// returns the rows it admits. Held rows are answered at once, so no other limit counts them,
// and they stay until the EndTxn. The refusal comes before the broker (nothing is appended) and
// is retriable; room comes as transactions commit or abort. A retry of a batch whose rows are
// held already adds none and passes. Requests pipelined on a connection are planned before the
// earlier ones hold their rows, so the bound can be passed by what those carry.
func (t *Tee) boundHeldRows(p *partitionPlan, planned int) int {
	max := t.maxHeld.Load()
	if max <= 0 || !p.transactional || len(p.rows) == 0 || p.reject || p.state == nil {
		return 0
	}
	key := producerPartition{producerID: p.producerID, epoch: p.epoch, topic: p.topic, partition: p.partition, tid: p.state.table.TID}
	held := t.txns.openNow.Load() + int64(planned)
	if held+int64(len(p.rows)) <= max {
		return len(p.rows)
	}
	if t.ledger.whole(key, p.baseSequence, len(p.rows)) {
		return 0
	}
	p.reject, p.rejectCode = true, codeOpenMLDBUnavailable
	p.rejectMessage = fmt.Sprintf("the proxy holds %d rows of open transactions for their EndTxn and this batch has %d more, past limits.max_held_transaction_rows (%d); nothing was appended, retry once transactions have committed or aborted",
		held, len(p.rows), max)
	return 0
}

// convert turns one record value into a row of the sink's table, resolving (and if allowed
// creating) the table on first use.
func (t *Tee) convert(ctx context.Context, p *partitionPlan, rec *connect.Record, value []byte, dst openmldb.Row) (openmldb.Row, error) {
	schemaless := p.sink.Format == config.FormatJSON
	if !schemaless {
		if err := t.parser.Parse(value, rec); err != nil {
			return nil, AsRecordError(err)
		}
	}
	if p.state == nil {
		// A schemaless record cannot create a table (config refuses auto_create with json).
		from := rec
		if schemaless {
			from = nil
		}
		st, err := t.table(ctx, p.sink, p.topic, from, !p.onLoop)
		if err != nil {
			return nil, err
		}
		p.state = st
	}
	var row openmldb.Row
	var err error
	if schemaless {
		row, err = p.state.conv.ConvertJSON(value, dst)
	} else {
		row, err = p.state.conv.Convert(rec, dst)
	}
	if err != nil {
		return nil, AsRecordError(err)
	}
	return row, validateRow(p.state.table, row)
}

// validateRow runs the checks OpenMLDB's SDK makes before sending (NOT NULL, TS columns present
// and not negative, date ranges), so a row the tablets would refuse is an invalid record now,
// before the batch reaches Kafka, rather than a write that fails after the append.
func validateRow(tbl *openmldb.Table, row openmldb.Row) error {
	err := tbl.Validate(row)
	if err == nil {
		return nil
	}
	var ce *openmldb.ColumnError
	if errors.As(err, &ce) {
		return &RecordError{Field: ce.Column, Reason: ce.Reason}
	}
	if err != nil {
		return &RecordError{Reason: err.Error()}
	}
	return nil
}

// isUnavailable tells OpenMLDB being unreachable (retry later) from a record or table that can
// never work (reject).
func isUnavailable(err error) bool {
	var re *RecordError
	if errors.As(err, &re) || errors.Is(err, openmldb.ErrTableNotFound) || errors.Is(err, openmldb.ErrUnsupportedTable) {
		return false
	}
	var se *openmldb.ServerError
	return !errors.As(err, &se)
}

// addRejections puts the rejected partitions' answers into the response, under their topics.
func addRejections(resp *kmsg.ProduceResponse, rejected []*partitionPlan) {
	for _, p := range rejected {
		msg := p.rejectMessage
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition, rp.ErrorCode, rp.ErrorMessage = p.partition, p.rejectCode, &msg
		rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
		for _, bad := range p.invalid {
			e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
			m := bad.err.Error()
			e.RelativeOffset, e.ErrorMessage = int32(bad.inBatch), &m
			rp.ErrorRecords = append(rp.ErrorRecords, e)
		}
		var topic *kmsg.ProduceResponseTopic
		for i := range resp.Topics {
			if resp.Topics[i].Topic == p.topic {
				topic = &resp.Topics[i]
				break
			}
		}
		if topic == nil {
			resp.Topics = append(resp.Topics, kmsg.NewProduceResponseTopic())
			topic = &resp.Topics[len(resp.Topics)-1]
			topic.Topic = p.topic
		}
		topic.Partitions = append(topic.Partitions, rp)
	}
}

// withoutPartitions copies req without the rejected partitions; record bytes are shared, so the
// broker still receives exactly the client's batches for the rest.
func withoutPartitions(req *kmsg.ProduceRequest, rejected []*partitionPlan) *kmsg.ProduceRequest {
	drop := map[string]map[int32]bool{}
	for _, p := range rejected {
		if drop[p.topic] == nil {
			drop[p.topic] = map[int32]bool{}
		}
		drop[p.topic][p.partition] = true
	}
	out := *req
	out.Topics = nil
	for _, tp := range req.Topics {
		kept := tp
		kept.Partitions = nil
		for _, p := range tp.Partitions {
			if !drop[tp.Topic][p.Partition] {
				kept.Partitions = append(kept.Partitions, p)
			}
		}
		if len(kept.Partitions) > 0 {
			out.Topics = append(out.Topics, kept)
		}
	}
	return &out
}

func findPartition(resp *kmsg.ProduceResponse, topic string, partition int32) *kmsg.ProduceResponseTopicPartition {
	for i := range resp.Topics {
		if resp.Topics[i].Topic != topic {
			continue
		}
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].Partition == partition {
				return &resp.Topics[i].Partitions[j]
			}
		}
	}
	return nil
}
