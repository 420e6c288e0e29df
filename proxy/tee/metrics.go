package tee

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the tee's Prometheus series, labelled by "db.table".
type Metrics struct {
	rowsWritten       *prometheus.CounterVec
	rowsRejected      *prometheus.CounterVec
	rowsFailed        *prometheus.CounterVec
	rowsDeduplicated  *prometheus.CounterVec
	rowsDeadLettered  *prometheus.CounterVec
	tombstones        *prometheus.CounterVec
	batchesRejected   *prometheus.CounterVec
	txnRowsDropped    *prometheus.CounterVec
	txnRowsHeld       *prometheus.GaugeVec
	acks0Failures     prometheus.Counter
	txnCommitsRefused prometheus.Counter
	txnUndecidable    prometheus.Gauge
	rowsSetAside      prometheus.Gauge
	writeLatency      *prometheus.HistogramVec
	produceLatency    *prometheus.HistogramVec
}

// NewMetrics creates the tee's metrics and registers them with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	table := []string{"table"}
	m := &Metrics{
		rowsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_rows_written_total",
			Help: "Rows stored in OpenMLDB."}, table),
		rowsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_rows_invalid_total",
			Help: "Records that could not become rows (rejected, dead-lettered or skipped by policy)."}, table),
		rowsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_rows_failed_total",
			Help: "Rows OpenMLDB did not store in time; the producer is told to retry."}, table),
		rowsDeduplicated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_rows_retried_deduplicated_total",
			Help: "Rows of retried idempotent batches that were already stored and not written again."}, table),
		rowsDeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_rows_dead_lettered_total",
			Help: "Invalid records produced to a dead-letter topic."}, table),
		tombstones: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_tombstones_skipped_total",
			Help: "Records with a null value, skipped."}, table),
		batchesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_partitions_rejected_total",
			Help: "Produce partitions answered with an error before reaching the broker."}, table),
		txnRowsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_tee_txn_rows_dropped_total",
			Help: "Held rows of transactions that will not commit: reason aborted (EndTxn abort), fenced (InitProducerId bumped the epoch), expired (open longer than kafka.transaction_max_timeout)."},
			[]string{"reason"}),
		txnRowsHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "okp_tee_txn_rows_held",
			Help: "Rows held for transactions: state open (waiting for EndTxn) or committed (Kafka committed, OpenMLDB write failed; waiting for the EndTxn retry)."},
			[]string{"state"}),
		acks0Failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "okp_tee_acks0_write_failures_total",
			Help: "acks=0 partitions whose rows were not all stored (the producer cannot be told)."}),
		txnCommitsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "okp_tee_txn_commits_refused_total",
			Help: "EndTxn commits answered UNKNOWN_PRODUCER_ID (abort and retry): the transaction began before this proxy process and writes to a teed topic, so rows of it were never held here."}),
		txnUndecidable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "okp_tee_txn_undecidable",
			Help: "Transactions whose commit answer was not seen and whose outcome the log cannot tell (batch compacted or deleted, offset gone to retention, marker of an unexpected epoch): an operator settles them (journal commit or abort)."}),
		rowsSetAside: prometheus.NewGauge(prometheus.GaugeOpts{Name: "okp_tee_journal_rows_set_aside",
			Help: "Journaled rows set aside because their table was gone or had other columns at a start, waiting for journal restore."}),
		writeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "okp_tee_openmldb_write_seconds",
			Help: "Time to store one partition's rows in OpenMLDB.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, table),
		produceLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "okp_tee_produce_seconds",
			Help: "Produce round trip through the tee, from request to answer.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"path"}),
	}
	if reg != nil {
		reg.MustRegister(m.rowsWritten, m.rowsRejected, m.rowsFailed, m.rowsDeduplicated, m.rowsDeadLettered,
			m.tombstones, m.batchesRejected, m.txnRowsDropped, m.txnRowsHeld, m.acks0Failures, m.txnCommitsRefused, m.txnUndecidable, m.rowsSetAside, m.writeLatency, m.produceLatency)
	}
	return m
}

// tableMetrics are one table's children of the per-table metrics written on every write,
// resolved once instead of by label on each request.
type tableMetrics struct {
	written, failed prometheus.Counter
	writeSeconds    prometheus.Observer
}

func (m *Metrics) forTable(table string) tableMetrics {
	return tableMetrics{
		written:      m.rowsWritten.WithLabelValues(table),
		failed:       m.rowsFailed.WithLabelValues(table),
		writeSeconds: m.writeLatency.WithLabelValues(table),
	}
}
