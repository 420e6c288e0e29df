// Package tee writes the records of teed Kafka topics into OpenMLDB online tables inside the
// Produce round trip: it validates and converts records before the request is forwarded, lets the
// broker append them, writes the rows, and only then releases the broker's answer. It plugs into
// the proxy as a proxy.Hook for Produce (key 0), InitProducerId (key 22) and EndTxn (key 26).
package tee

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/lograte"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// normalizedSinks is a normalized copy of sinks (the caller's stay as they are).
func normalizedSinks(sinks []config.Sink) ([]config.Sink, error) {
	out := append([]config.Sink(nil), sinks...)
	if err := config.NormalizeSinks(out); err != nil {
		return nil, fmt.Errorf("tee: %w", err)
	}
	return out, nil
}

// DefaultWriteTimeout bounds OpenMLDB writes that have no Kafka deadline to inherit: acks=0
// produces and transaction commits.
const DefaultWriteTimeout = 30 * time.Second

// Options configures a Tee.
type Options struct {
	// Sinks are normalized (config.NormalizeSinks) on a copy: defaults filled in, and a sink
	// that is not valid makes New fail.
	Sinks    []config.Sink
	Database string
	Store    *openmldb.Client
	// KafkaBootstrap is where the tee's own Kafka clients connect: the dead-letter producer (only
	// with an on_invalid: dlq sink) and the transaction coordinator check (txnstart.go).
	KafkaBootstrap []string
	// KafkaTLS, if set, is the TLS those clients use (kafka.tls, as the proxy's broker connections).
	KafkaTLS *tls.Config
	// KafkaSASL, if set, authenticates those clients (kafka.sasl); clients' own SASL passes
	// through the proxy and is never available to the tee.
	KafkaSASL sasl.Mechanism
	Logger    *slog.Logger
	Metrics   *Metrics // nil: a private, unregistered set
	// LogPayloads includes the invalid records' values in the log line of a rejected partition.
	LogPayloads bool
	// MaxHeldTransactionRows bounds the rows of open transactions held for their EndTxn (0: no
	// limit); see config.Limits.
	MaxHeldTransactionRows int
	// TransactionMaxTimeout is the brokers' transaction.max.timeout.ms: rows of a transaction
	// held longer than this without its EndTxn passing through are dropped, since the coordinator
	// has aborted it by then (0: DefaultTransactionMaxTimeout).
	TransactionMaxTimeout time.Duration
	// JournalDir, if set, is where rows of committed transactions not yet stored in OpenMLDB
	// (journal.go) are kept across restarts and crashes; New writes what it finds there. "":
	// memory only.
	JournalDir string
}

// commitWriteTimeout bounds the retries of a commit's rows before EndTxn is answered: below the
// time clients give an EndTxn response (franz-go 10 s, the Java producer 30 s), so they hear
// REQUEST_TIMED_OUT rather than drop the connection.
const commitWriteTimeout = 8 * time.Second

// DefaultTransactionMaxTimeout is Kafka's default transaction.max.timeout.ms.
const DefaultTransactionMaxTimeout = 15 * time.Minute

// Tee implements proxy.Hook.
type Tee struct {
	sinks   atomic.Pointer[[]config.Sink] // swapped whole by Reload
	db      string
	store   *openmldb.Client
	log     *slog.Logger
	metrics *Metrics
	parser  *connect.Parser
	dec     kgo.Decompressor
	ledger  *ledger
	txns    *heldRows
	maxHeld atomic.Int64 // MaxHeldTransactionRows, replaced by SetMaxHeldTransactionRows
	// retrying marks the keys whose committed rows a goroutine keeps writing (retryCommitted);
	// closed ends those goroutines and bg waits for them.
	retryMu     sync.Mutex
	retrying    map[txnKey]bool
	retryClosed bool // set by Close: no new retry goroutine starts
	bgCtx       context.Context
	bgCancel    context.CancelFunc
	// commitTimeout bounds the write of a commit's rows before EndTxn is answered (tests shorten it).
	commitTimeout time.Duration
	closed        chan struct{}
	closeOnce     sync.Once
	leftOnce      sync.Once // Close's accounting of rows left, once
	// draining is closed by Drain: retries of committed rows stop backing off.
	draining  chan struct{}
	drainOnce sync.Once
	bg        sync.WaitGroup
	records   sync.Pool                  // *connect.Record scratch for planPartition
	dlq       atomic.Pointer[kgo.Client] // set once, by New or the first Reload that needs it
	// starts and startedAt tell whether a transaction began under this process (txnstart.go);
	// adminCl asks the coordinator when that is not known.
	starts    txnStarts
	startedAt time.Time
	startSkew time.Duration
	ongoing   *ongoingAtStart
	adminMu   sync.Mutex
	adminCl   *kgo.Client

	bootstrap []string
	kafkaTLS  atomic.Pointer[tls.Config] // nil without kafka.tls; replaced by SetKafkaTLS
	kafkaSASL sasl.Mechanism
	payloads  atomic.Bool
	reloadMu  sync.Mutex
	// logLimit keeps per-request warnings (rejected partitions, acks=0 failures) to one line a
	// second per table and reason; the metrics count every one.
	logLimit *lograte.Limiter
	// rejectLog lets rejectLogBurst "rejected produce partition" lines a second out per table:
	// for clients that cannot show the reason (Produce v7, as kcat sends), the log is where a
	// user reads it, and a burst of different mistakes should show each.
	rejectLog *lograte.Limiter
	journal   *journal // nil without Options.JournalDir
	// journalLn takes the journal command's changes while this proxy runs (journal_socket.go);
	// journalConn is the connection being served, for Close to cut off.
	journalLn      net.Listener
	journalConnMu  sync.Mutex
	journalConn    net.Conn
	journalClosing bool
	// journalDirty: the last journal save failed, so the file may lack rows still owed.
	journalDirty atomic.Bool

	mu       sync.Mutex
	tables   map[tableUse]*tableState
	creating map[string]*sync.Mutex
}

// tableUse is a table as one sink writes it: sinks naming the same table can project different
// fields (and a Reload replaces the sinks), so each gets its own converter.
type tableUse struct {
	name string
	sink *config.Sink
}

// tableState is a table as the catalog last showed it, with a converter for its columns.
type tableState struct {
	table *openmldb.Table
	conv  *Converter
	m     tableMetrics
}

// New builds a Tee. It refuses configurations that cannot work, such as exactly_once on a
// table whose indexes have no TS column.
func New(opts Options) (*Tee, error) {
	if opts.Store == nil {
		return nil, errors.New("tee: no OpenMLDB client")
	}
	if opts.Database == "" {
		return nil, errors.New("openmldb.database: required when sinks are configured")
	}
	sinks, err := normalizedSinks(opts.Sinks)
	if err != nil {
		return nil, err
	}
	opts.Sinks = sinks
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	t := &Tee{
		db: opts.Database, store: opts.Store, log: log, metrics: m, bootstrap: opts.KafkaBootstrap, kafkaSASL: opts.KafkaSASL,
		parser: connect.NewParser(256), dec: kgo.DefaultDecompressor(),
		ledger: newLedger(0), retrying: map[txnKey]bool{}, closed: make(chan struct{}), draining: make(chan struct{}), commitTimeout: commitWriteTimeout,
		startedAt: time.Now(), startSkew: defaultStartSkew,
		tables: map[tableUse]*tableState{}, creating: map[string]*sync.Mutex{}, logLimit: lograte.New(time.Second),
		rejectLog: lograte.NewBurst(time.Second, rejectLogBurst),
	}
	t.kafkaTLS.Store(opts.KafkaTLS)
	maxAge := opts.TransactionMaxTimeout
	if maxAge == 0 {
		maxAge = DefaultTransactionMaxTimeout
	}
	t.bgCtx, t.bgCancel = context.WithCancel(context.Background())
	t.txns = newHeldRows(maxAge, func(reason string, rows int) {
		t.metrics.txnRowsDropped.WithLabelValues(reason).Add(float64(rows))
		t.log.Warn("held rows of a transaction that will not commit dropped", "reason", reason, "rows", rows)
	}, func(open, committed int) {
		t.metrics.txnRowsHeld.WithLabelValues("open").Set(float64(open))
		t.metrics.txnRowsHeld.WithLabelValues("committed").Set(float64(committed))
	})
	t.txns.undecided = t.startResolving
	t.txns.undecidableGauge = func(n int) { t.metrics.txnUndecidable.Set(float64(n)) }
	t.records.New = func() any { return new(connect.Record) }
	t.sinks.Store(&opts.Sinks)
	t.payloads.Store(opts.LogPayloads)
	t.maxHeld.Store(int64(opts.MaxHeldTransactionRows))
	if err := t.ensureDLQ(opts.Sinks); err != nil {
		return nil, err
	}
	for i := range opts.Sinks {
		if err := t.checkExactlyOnce(&opts.Sinks[i]); err != nil {
			t.Close()
			return nil, err
		}
	}
	if opts.JournalDir != "" {
		if err := t.openJournal(opts.JournalDir); err != nil {
			t.Close()
			return nil, err
		}
	}
	t.ongoing = t.listOngoing()
	return t, nil
}

// openJournal takes over the rows a previous run left in the journal and starts writing them.
func (t *Tee) openJournal(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("openmldb.journal_dir: %w", err)
	}
	j := &journal{dir: dir}
	if err := j.lock(); err != nil {
		return fmt.Errorf("openmldb.journal_dir: %w", err)
	}
	t.journal = j
	j.removeTemps() // of a write a crash interrupted: the journal itself is whole
	if recs, err := takeLedger(dir); err != nil {
		// Only duplicates are at stake (retries write their batches whole), not rows owed.
		t.log.Error("idempotent batches stored in part by the previous run cannot be read; their retries write every row again", "err", err)
	} else if len(recs) > 0 {
		skipped := t.ledger.restore(recs)
		t.log.Info("idempotent batches stored in part by the previous run taken over", "batches", len(recs)-skipped, "skipped", skipped)
	}
	l, err := j.load(t.store.Table)
	if err != nil {
		return fmt.Errorf("openmldb.journal_dir: %w", err)
	}
	groups, pending := l.groups, l.pending
	j.asides, j.imported = l.asides, l.imported
	t.metrics.rowsSetAside.Set(float64(countAsideRows(j.asides)))
	for _, u := range l.unusable {
		t.log.Error("journaled rows cannot be written (table missing or its columns changed); set aside in the journal for an operator (journal show, journal restore)",
			"file", j.path(), "set_aside_id", l.asideID, "rows", u)
	}
	keys := t.txns.adopt(groups) // each group its own key
	t.txns.load(pending)         // before any save, which writes what heldRows has
	if l.changed() {
		// The journal keeps only what is written from it now, and the set-aside rows, in one
		// write; until it succeeds, the file on disk still has them where they were. The
		// earlier release's files go once a journal naming them is written.
		t.saveJournal() // retried at every retry round when it fails (logged)
	}
	if len(l.legacy) > 0 {
		t.log.Warn("rows an earlier release set aside in files of their own are in the journal now, under the files' names (journal show)", "files", l.legacy)
	}
	if len(keys) > 0 {
		t.log.Info("writing rows of committed transactions kept in the journal by an earlier run", "rows", countRows(groups), "file", t.journal.path())
	}
	for _, k := range keys {
		t.retryCommitted(k, "(journal)")
	}
	if len(pending) > 0 {
		t.log.Info("rows of transactions whose commit was at the broker when an earlier run stopped; reading their outcome from the partitions' transaction markers",
			"transactions", len(pending), "file", t.journal.path())
		t.startResolving(pending)
	}
	t.listenJournal()
	return nil
}

// checkExactlyOnce refuses exactly_once for existing tables with an index lacking a TS column:
// put_if_absent on such an index compares the new row with every row stored under the key, a
// cost that grows without bound. Tables created later are checked when first used.
func (t *Tee) checkExactlyOnce(s *config.Sink) error {
	if !s.ExactlyOnce {
		return nil
	}
	for _, topic := range s.Topics {
		tbl, err := t.store.Table(t.db, s.TableFor(topic))
		if err != nil {
			continue
		}
		if err := exactlyOnceUsable(tbl); err != nil {
			return fmt.Errorf("sink for topic %s: exactly_once: %w", topic, err)
		}
	}
	if s.AutoCreate && len(s.Index.Key) > 0 && s.Index.TS == "" {
		return fmt.Errorf("sink for %v: exactly_once needs index.ts: without a TS column OpenMLDB's put_if_absent scans every row of a key", s.Topics)
	}
	if s.AutoCreate && len(s.Index.Key) == 0 {
		return fmt.Errorf("sink for %v: exactly_once needs an index with a TS column (index.key and index.ts); the default index has none", s.Topics)
	}
	return nil
}

func exactlyOnceUsable(tbl *openmldb.Table) error {
	for _, ix := range tbl.Indexes {
		if !ix.Deleted && ix.TS == "" {
			return fmt.Errorf("table %s.%s index %s has no TS column, so put_if_absent would scan whole key lists", tbl.DB, tbl.Name, ix.Name)
		}
	}
	return nil
}

// Drain waits, until ctx ends, for the rows of committed transactions the proxy is still writing
// (OpenMLDB refused them at commit), retrying them without backing off meanwhile, so a shutdown
// loses none that OpenMLDB takes in time. Run it after the proxy's drain, before Close. With a
// journal it returns at once: the rows are on disk and the next start writes them.
func (t *Tee) Drain(ctx context.Context) error {
	t.drainOnce.Do(func() { close(t.draining) })
	if t.journal != nil && !t.journalDirty.Load() {
		// The rows are in the journal; the next start writes what is left. Attempts already
		// under way end first, so Close cuts off no Put that may still land.
		for t.txns.attempting() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("rows of committed transactions still being written: %w", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil
	}
	for {
		n := t.txns.committedLeft()
		if n == 0 {
			return nil
		}
		if t.journal != nil && !t.journalDirty.Load() {
			// A retry round wrote the journal after all (and its writer stops): the rows are on
			// disk now; wait only for the attempts under way.
			return t.Drain(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d rows of committed transactions not stored in OpenMLDB: %w", n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops the background writers and releases the dead-letter producer; rows of committed
// transactions still not stored are left in the journal (or, without one, lost and counted).
func (t *Tee) Close() {
	t.closeOnce.Do(func() {
		t.retryMu.Lock()
		t.retryClosed = true
		t.retryMu.Unlock()
		t.closeJournalSocket() // its goroutine is one of t.bg
		t.bgCancel()
		close(t.closed)
	})
	t.bg.Wait()
	t.leftOnce.Do(func() {
		if n := t.txns.committedLeft(); n > 0 {
			if t.journal != nil && t.saveJournal() == nil {
				t.log.Warn("closing with rows of committed transactions not stored in OpenMLDB; they are in the journal and written at the next start",
					"rows", n, "file", t.journal.path())
			} else if t.journal != nil {
				t.metrics.txnRowsDropped.WithLabelValues(dropUnwritable).Add(float64(n))
				t.log.Error("closing with rows of committed transactions not stored in OpenMLDB; the journal cannot be written, so they are lost unless an earlier journal write kept them",
					"rows", n, "file", t.journal.path())
			} else {
				t.metrics.txnRowsDropped.WithLabelValues(dropUnwritable).Add(float64(n))
				t.log.Error("closing with rows of committed transactions not stored in OpenMLDB; they are lost (set openmldb.journal_dir to keep them)", "rows", n)
			}
		}
		if n := t.txns.undecidedRows(); n > 0 && t.journal == nil {
			t.log.Error("closing with rows of transactions whose commit outcome was not seen yet; Kafka may have committed them and they are not in OpenMLDB (set openmldb.journal_dir to keep them)", "rows", n)
		}
		if t.journal != nil {
			// Batches answered with rows missing, for the retries that reach the next process.
			if err := saveLedger(t.journal.dir, t.ledger.unfinished()); err != nil {
				t.log.Error("cannot keep the idempotent batches stored in part; a retry reaching the next start writes all their rows again", "err", err)
			}
			t.journal.unlock()
		}
		if cl := t.dlq.Load(); cl != nil {
			cl.Close()
		}
		t.adminMu.Lock()
		if t.adminCl != nil {
			t.adminCl.Close()
		}
		t.adminMu.Unlock()
	})
}

var _ proxy.LoopBeginner = (*Tee)(nil)

// Intercepts claims Produce (to tee records), InitProducerId (to release fenced transactions' rows)
// and EndTxn (to write or drop held transactional rows).
func (t *Tee) Intercepts(key int16) bool { return key == 0 || key == 22 || key == 26 }

// Begin dispatches an intercepted request.
func (t *Tee) Begin(ctx context.Context, c proxy.ConnInfo, req kmsg.Request) proxy.Step {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return t.beginProduce(ctx, c, r, t.topicSinks(r), false)
	case *kmsg.EndTxnRequest:
		if step, refused := t.refuseUnseenCommit(ctx, r); refused {
			return step
		}
		return t.beginEndTxn(r)
	case *kmsg.InitProducerIDRequest:
		return t.beginInitProducerID(r)
	}
	return proxy.Step{}
}

// BeginOnLoop is Begin on the proxy's event loop, taken for small uncompressed Produce requests
// whose tables exist (proxy.LoopBeginner); the rest go to Begin.
func (t *Tee) BeginOnLoop(ctx context.Context, c proxy.ConnInfo, req kmsg.Request) (proxy.Step, bool) {
	if r, ok := req.(*kmsg.ProduceRequest); ok {
		return t.beginProduceOnLoop(ctx, c, r)
	}
	return proxy.Step{}, false
}

// table returns the current state of a sink's table for topic, creating the table from the
// record's schema when the sink allows it and create is set.
func (t *Tee) table(ctx context.Context, s *config.Sink, topic string, rec *connect.Record, create bool) (*tableState, error) {
	name := s.TableFor(topic)
	tbl, err := t.store.Table(t.db, name)
	if errors.Is(err, openmldb.ErrTableNotFound) && s.AutoCreate {
		if !create {
			// Planned on the event loop, where the table was there a moment ago: creating it
			// here would hold every connection of the loop for a nameserver round trip. The
			// client retries (a retriable error), and its retry is planned off the loop.
			return nil, fmt.Errorf("table %s.%s went missing while the request was planned; it is created on the retry", t.db, name)
		}
		tbl, err = t.createTable(ctx, s, name, rec)
	}
	if err != nil {
		if errors.Is(err, openmldb.ErrTableNotFound) {
			return nil, &RecordError{Reason: fmt.Sprintf("table %s.%s does not exist; create it or set auto_create for topic %s", t.db, name, topic)}
		}
		return nil, err
	}
	if tbl.Unsupported != nil {
		return nil, &RecordError{Reason: fmt.Sprintf("table %s.%s cannot be written: %v", t.db, name, tbl.Unsupported)}
	}
	use := tableUse{name: name, sink: s}
	t.mu.Lock()
	st := t.tables[use]
	t.mu.Unlock()
	if st != nil && st.table == tbl {
		return st, nil
	}
	// First use, or the catalog changed (new TableInfo after a notify): rebuild the converter.
	if s.ExactlyOnce {
		if err := exactlyOnceUsable(tbl); err != nil {
			return nil, &RecordError{Reason: "exactly_once: " + err.Error()}
		}
	}
	conv, err := NewConverter(tbl.Columns, ConvertOptions{Fields: s.Fields})
	if err != nil {
		return nil, &RecordError{Reason: fmt.Sprintf("table %s.%s: %v", t.db, name, err)}
	}
	st = &tableState{table: tbl, conv: conv, m: t.metrics.forTable(t.db + "." + name)}
	t.mu.Lock()
	t.tables[use] = st
	t.mu.Unlock()
	return st, nil
}

// createTable creates the table from the first record's schema, once even when several
// connections race for it.
func (t *Tee) createTable(ctx context.Context, s *config.Sink, name string, rec *connect.Record) (*openmldb.Table, error) {
	t.mu.Lock()
	lock := t.creating[name]
	if lock == nil {
		lock = &sync.Mutex{}
		t.creating[name] = lock
	}
	t.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	if tbl, err := t.store.Table(t.db, name); err == nil {
		return tbl, nil
	}
	if rec == nil || rec.Schema == nil {
		return nil, &RecordError{Reason: fmt.Sprintf("table %s.%s does not exist and the record has no schema to create it from", t.db, name)}
	}
	cols, err := ColumnsFromSchema(rec.Schema)
	if err != nil {
		return nil, AsRecordError(err)
	}
	spec := openmldb.TableSpec{DB: t.db, Name: name, Columns: cols, IfNotExists: true,
		PartitionNum: uint32(s.PartitionNum), ReplicaNum: uint32(s.ReplicaNum)}
	if len(s.Index.Key) > 0 {
		ttl, _ := config.ParseTTL(s.Index.TTL) // validated with the config
		ix := openmldb.Index{Keys: s.Index.Key, TS: s.Index.TS, TTL: openmldb.TTL{Type: openmldb.TTLAbsolute, AbsMinutes: ttl.AbsMinutes}}
		if ttl.Latest > 0 {
			ix.TTL = openmldb.TTL{Type: openmldb.TTLLatest, Latest: ttl.Latest}
		}
		spec.Indexes = []openmldb.Index{ix}
	}
	tbl, err := t.store.CreateTable(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("auto-create table %s.%s: %w", t.db, name, err)
	}
	t.log.Info("created table", "db", t.db, "table", name, "columns", len(cols))
	return tbl, nil
}
