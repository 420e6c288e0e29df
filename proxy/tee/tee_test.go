package tee_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// seedMessage is the seed guide's message.json.
const seedMessage = `{"schema":{"type":"struct","fields":[{"type":"int16","optional":true,"field":"c1_int16"},{"type":"int32","optional":true,"field":"c2_int32"},{"type":"int64","optional":true,"field":"c3_int64"},{"type":"float","optional":true,"field":"c4_float"},{"type":"double","optional":true,"field":"c5_double"},{"type":"boolean","optional":true,"field":"c6_boolean"},{"type":"string","optional":true,"field":"c7_string"},{"type":"int64","name":"org.apache.kafka.connect.data.Date","optional":true,"field":"c8_date"},{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp","optional":true,"field":"c9_timestamp"}],"optional":false,"name":"foobar"},"payload":{"c1_int16":1,"c2_int32":2,"c3_int64":3,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":19109,"c9_timestamp":1651051906000}}`

// env is kfake + the OpenMLDB-compatible cluster + the proxy with the tee, all in process.
type env struct {
	kafka   *kfake.Cluster
	cluster *openmldbtest.Cluster
	store   *openmldb.Client
	proxy   *proxy.Proxy
	tee     *tee.Tee
	addr    string
	reg     *prometheus.Registry
}

// metric sums every series of a tee counter or gauge.
func (e *env) metric(t *testing.T, name string) float64 {
	t.Helper()
	return e.metricWith(t, name, "", "")
}

const partitions = 6

func startEnv(t *testing.T, sinks []config.Sink, topics ...string) *env {
	t.Helper()
	return startEnvWith(t, nil, sinks, topics...)
}

// startEnvWith is startEnv with a chance to adjust the tee's options.
func startEnvWith(t *testing.T, adjust func(*tee.Options), sinks []config.Sink, topics ...string) *env {
	t.Helper()
	return startEnvOn(t, openmldbtest.Options{}, adjust, sinks, topics...)
}

// startEnvOn is startEnvWith on a cluster started with clusterOpts (with clusterOpts.ZK, the
// tee's client finds it through ZooKeeper).
func startEnvOn(t *testing.T, clusterOpts openmldbtest.Options, adjust func(*tee.Options), sinks []config.Sink, topics ...string) *env {
	t.Helper()
	return startEnvKafka(t, clusterOpts, nil, adjust, sinks, topics...)
}

// startEnvKafka is startEnvOn with more options for kfake.
func startEnvKafka(t *testing.T, clusterOpts openmldbtest.Options, kafkaOpts []kfake.Opt, adjust func(*tee.Options), sinks []config.Sink, topics ...string) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &env{}
	var err error
	e.kafka, err = kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...)}, kafkaOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.kafka.Close)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	clusterOpts.Logger = logger
	e.cluster, err = openmldbtest.Start(ctx, clusterOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cluster.Close)
	storeOpts := openmldb.Options{Nameserver: e.cluster.Nameserver(), Logger: logger}
	if clusterOpts.ZK != "" {
		storeOpts = openmldb.Options{ZKCluster: clusterOpts.ZK, ZKPath: e.cluster.ZKPath(), Logger: logger}
	}
	e.store, err = openmldb.Open(ctx, storeOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.store.Close)
	if err := e.store.CreateDatabase(ctx, "kafka_test", true); err != nil {
		t.Fatal(err)
	}
	if err := config.NormalizeSinks(sinks); err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	tee.RegisterPutCounters(e.reg, e.store)
	opts := tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, KafkaBootstrap: e.kafka.ListenAddrs(),
		Logger: logger, Metrics: tee.NewMetrics(e.reg)}
	if adjust != nil {
		adjust(&opts)
	}
	tt, err := tee.New(opts)
	e.tee = tt
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tt.Close)
	port := freeport.BlockT(t, 3)
	e.addr = "127.0.0.1:" + strconv.Itoa(port)
	e.proxy, err = proxy.New(proxy.Options{Listen: e.addr, Bootstrap: e.kafka.ListenAddrs(), Hook: tt, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.proxy.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.proxy.Close(ctx)
	})
	return e
}

func (e *env) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.addr), kgo.RequestRetries(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// tableRows reads every row of kafka_test.name back from the cluster through the client.
func (e *env) tableRows(t *testing.T, name string) []openmldb.Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tbl, err := e.store.Table("kafka_test", name)
	if errors.Is(err, openmldb.ErrTableNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rows []openmldb.Row
	err = e.store.Traverse(ctx, tbl, func(b []byte) error {
		r, err := openmldb.DecodeRow(tbl.Columns, b)
		rows = append(rows, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// topicRecords consumes everything in topic directly from the broker (not through the proxy).
func (e *env) topicRecords(t *testing.T, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := e.endOffsets(t, topic)
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s", len(out), want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func TestSeedMessageAutoCreatesAndLands(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	cl := e.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedMessage)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rows := e.tableRows(t, "topic1")
	if len(rows) != 1 {
		t.Fatalf("table has %d rows, want 1", len(rows))
	}
	r := rows[0]
	want := openmldb.Row{openmldb.Int(1), openmldb.Int(2), openmldb.Int(3), openmldb.Float(float64(float32(4.4))),
		openmldb.Float(5.555), openmldb.Bool(true), openmldb.Str("c77777"), openmldb.Date(2022, 4, 27), openmldb.Int(1651051906000)}
	for i := range want {
		if r[i] != want[i] {
			t.Errorf("column %d = %+v, want %+v", i, r[i], want[i])
		}
	}
	if got := e.topicRecords(t, "topic1"); len(got) != 1 || got[0] != seedMessage {
		t.Fatalf("topic holds %q", got)
	}
}

// rawBatch encodes values as one uncompressed, non-idempotent record batch.
func rawBatch(values ...string) []byte { return rawProducerBatch(-1, -1, -1, values...) }

// tombstone, given to rawBatch as a value, is a record with a null value.
const tombstone = "\x00tombstone"

// rawProducerBatch is rawBatch from producer id pid (epoch, first sequence seq); -1s for none.
func rawProducerBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		var body []byte
		body = append(body, 0)                     // attributes
		body = binary.AppendVarint(body, 0)        // timestamp delta
		body = binary.AppendVarint(body, int64(i)) // offset delta
		body = binary.AppendVarint(body, -1)       // null key
		if v == tombstone {
			body = binary.AppendVarint(body, -1) // null value
		} else {
			body = binary.AppendVarint(body, int64(len(v))) // value
			body = append(body, v...)
		}
		body = binary.AppendVarint(body, 0) // no headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := kmsg.RecordBatch{
		FirstOffset: 0, PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(values)), Records: recs,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func produceRaw(t *testing.T, cl *kgo.Client, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("response %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

func TestInvalidRecordRejectsWholeBatch(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	cl := e.client(t)
	bad := strings.Replace(seedMessage, `"c2_int32":2`, `"c2_int32":2.5`, 1)
	p := produceRaw(t, cl, "topic1", 0, rawBatch(seedMessage, bad))
	if p.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("error code %d, want INVALID_RECORD", p.ErrorCode)
	}
	if len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != 1 || p.ErrorRecords[0].ErrorMessage == nil ||
		!strings.Contains(*p.ErrorRecords[0].ErrorMessage, `c2_int32`) {
		t.Fatalf("record errors %+v", p.ErrorRecords)
	}
	if p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "1 of 2 records") {
		t.Fatalf("error message %v", p.ErrorMessage)
	}
	if got := e.topicRecords(t, "topic1"); len(got) != 0 {
		t.Fatalf("broker got %d records of a rejected batch", len(got))
	}
	if rows := e.tableRows(t, "topic1"); len(rows) != 0 {
		t.Fatalf("table got %d rows of a rejected batch", len(rows))
	}
	// kgo surfaces the same rejection as kerr.InvalidRecord.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(bad)}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("kgo error = %v, want INVALID_RECORD", err)
	}
}

// seedRow is the seed message with c3_int64 = id, so every row is distinguishable.
func seedRow(id int) string {
	return strings.Replace(seedMessage, `"c3_int64":3`, `"c3_int64":`+strconv.Itoa(id), 1)
}

func TestIdempotentRetriesAfterPutFailuresAndStallStoreEachRowOnce(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true,
		Index: config.Index{Key: []string{"c3_int64"}}}}, "topic1")
	cl := e.client(t, kgo.ProduceRequestTimeout(1500*time.Millisecond), kgo.RequestRetries(100),
		kgo.RecordDeliveryTimeout(2*time.Minute), kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Create the table first so the faults hit row writes, not the DDL.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	const n = 50_000
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		switch i {
		case 5_000:
			e.cluster.FailPuts(300, 116) // kPutFailed: a data error the client must not retry itself
		case 20_000:
			e.cluster.StallPuts(2500 * time.Millisecond) // longer than the produce timeout
		}
		cl.Produce(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(i))}, func(_ *kgo.Record, err error) { errs <- err })
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("produce failed for good: %v", err)
		}
	}
	records := e.topicRecords(t, "topic1")
	if len(records) != n {
		t.Fatalf("topic holds %d records, want %d", len(records), n)
	}
	rows := e.tableRows(t, "topic1")
	seen := make(map[int64]int, len(rows))
	for _, r := range rows {
		seen[r[2].I]++
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("row %d stored %d times", id, c)
		}
	}
	if len(rows) != n || len(seen) != n {
		t.Fatalf("table holds %d rows (%d distinct), want %d", len(rows), len(seen), n)
	}
	// The faults really forced retries: rows failed, and retried batches skipped stored rows.
	if f := e.metric(t, "okp_tee_rows_failed_total"); f < 300 {
		t.Errorf("only %v rows failed; the injected faults did not bite", f)
	}
	if d := e.metric(t, "okp_tee_rows_retried_deduplicated_total"); d == 0 {
		t.Error("no retried batch reused the ledger")
	}
	t.Logf("rows failed %v, rows skipped on retry %v", e.metric(t, "okp_tee_rows_failed_total"), e.metric(t, "okp_tee_rows_retried_deduplicated_total"))
}

func TestTransactionRowsLandOnlyOnCommit(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := e.client(t, kgo.TransactionalID("tee-txn"))
	// Create the table outside the transactions.
	plain := e.client(t)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run := func(first int, commit bool) {
		produceInTxn(t, ctx, cl, first, 10)
		if commit {
			// Produced and appended, but not committed: OpenMLDB must not show the rows yet.
			if rows := e.tableRows(t, "topic1"); len(rows) != 1 {
				t.Fatalf("before commit the table has %d rows, want only the 1 non-transactional row", len(rows))
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	run(100, true)
	run(200, false)
	rows := e.tableRows(t, "topic1")
	ids := map[int64]bool{}
	for _, r := range rows {
		ids[r[2].I] = true
	}
	if len(rows) != 11 || !ids[0] || !ids[100] || !ids[109] || ids[200] {
		t.Fatalf("table has %d rows with ids %v; want 0 and 100..109 only", len(rows), ids)
	}
}

// metricWith sums the series of a tee counter or gauge that carry label=value (every series when
// label is "").
func (e *env) metricWith(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == label && lp.GetValue() == value
			}) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// produceInTxn begins a transaction on cl and produces seed rows first..first+n-1 in it.
func produceInTxn(t *testing.T, ctx context.Context, cl *kgo.Client, first, n int) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := first; i < first+n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// Rows held for a transaction whose EndTxn never comes through are released: when a new producer
// with the same transactional id fences it (InitProducerId bumps the epoch), and when it is older
// than the brokers' transaction.max.timeout.ms. Neither ever reaches the table; the fencing
// producer's own committed rows do.
func TestHeldTransactionsReleasedWhenFencedOrExpired(t *testing.T) {
	const maxAge = 700 * time.Millisecond
	e := startEnvWith(t, func(o *tee.Options) { o.TransactionMaxTimeout = maxAge },
		[]config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plain := e.client(t)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	const dropped = "okp_tee_txn_rows_dropped_total"

	// Fenced: the first instance holds 5 rows and disappears; a second instance with the same
	// transactional id starts, commits 3 rows of its own.
	const held = "okp_tee_txn_rows_held"
	old := e.client(t, kgo.TransactionalID("fenced-app"))
	produceInTxn(t, ctx, old, 100, 5)
	if got := e.metricWith(t, held, "state", "open"); got != 5 {
		t.Fatalf("rows held %v, want 5", got)
	}
	fresh := e.client(t, kgo.TransactionalID("fenced-app"))
	produceInTxn(t, ctx, fresh, 200, 3)
	if got := e.metricWith(t, dropped, "reason", "fenced"); got != 5 {
		t.Fatalf("fenced rows dropped %v, want 5", got)
	}
	if got := e.metricWith(t, held, "state", "open"); got != 3 {
		t.Fatalf("rows held after fencing %v, want the new producer's 3", got)
	}
	if err := fresh.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	// Expired: 4 rows held, then nothing from that producer for longer than maxAge; the next
	// request through the tee sweeps them.
	stale := e.client(t, kgo.TransactionalID("stale-app"))
	produceInTxn(t, ctx, stale, 300, 4)
	if got := e.metricWith(t, dropped, "reason", "expired"); got != 0 {
		t.Fatalf("rows expired before their time: %v", got)
	}
	// Past maxAge but within the grace (maxAge itself when below a minute): still held, as the
	// coordinator may not have aborted it yet.
	time.Sleep(maxAge + maxAge/3)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(1))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := e.metricWith(t, dropped, "reason", "expired"); got != 0 {
		t.Fatalf("rows expired within the grace: %v", got)
	}
	time.Sleep(maxAge)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(2))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := e.metricWith(t, dropped, "reason", "expired"); got != 4 {
		t.Fatalf("expired rows dropped %v, want 4", got)
	}
	if got := e.metricWith(t, held, "state", "open"); got != 0 {
		t.Fatalf("rows still held %v, want 0", got)
	}

	ids := map[int64]bool{}
	for _, r := range e.tableRows(t, "topic1") {
		ids[r[2].I] = true
	}
	want := map[int64]bool{0: true, 1: true, 2: true, 200: true, 201: true, 202: true}
	if len(ids) != len(want) {
		t.Fatalf("table ids %v, want %v", ids, want)
	}
	for id := range want {
		if !ids[id] {
			t.Fatalf("table ids %v, want %v", ids, want)
		}
	}
}

// A transaction Kafka committed whose rows OpenMLDB refuses: a few failures are retried before
// EndTxn is answered (the commit succeeds); failures that outlast the commit timeout answer
// REQUEST_TIMED_OUT, keep the rows as committed (apart from the producer's next transaction, whose
// abort leaves them alone) and the proxy writes them once OpenMLDB takes them again.
func TestCommittedTransactionRowsRetriedByTheProxy(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	tee.SetCommitTimeout(e.tee, 500*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl := e.client(t, kgo.TransactionalID("retry-app"))
	const held = "okp_tee_txn_rows_held"

	// Transient: 3 Puts fail, the retry inside the commit stores them.
	produceInTxn(t, ctx, cl, 1, 5)
	e.cluster.FailPuts(3, 999) // a code the client's writer does not retry by itself
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("EndTxn with 3 transient failures: %v", err)
	}
	if f := e.metric(t, "okp_tee_rows_failed_total"); f != 0 {
		t.Fatalf("rows failed %v after the commit's own retries stored them, want 0", f)
	}

	// Lasting: every Put fails past the commit timeout.
	produceInTxn(t, ctx, cl, 10, 4)
	e.cluster.FailPuts(1<<30, 999)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("EndTxn with OpenMLDB refusing: %v, want REQUEST_TIMED_OUT", err)
	}
	if got := e.metricWith(t, held, "state", "committed"); got != 4 {
		t.Fatalf("committed rows held %v, want 4", got)
	}
	if f := e.metric(t, "okp_tee_rows_failed_total"); f != 4 {
		t.Fatalf("rows failed %v, want the 4 the commit could not store", f)
	}
	// kgo wants an abort after an unconfirmed commit; it must not take the committed rows along.
	_ = cl.EndTransaction(ctx, kgo.TryAbort)
	if got := e.metricWith(t, held, "state", "committed"); got != 4 {
		t.Fatalf("committed rows held after the abort %v, want still 4", got)
	}
	// A shutdown's drain waits for them, and reports what it could not store in time.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err := e.tee.Drain(short)
	cancelShort()
	if err == nil || !strings.Contains(err.Error(), "4 rows of committed transactions not stored") {
		t.Fatalf("drain while OpenMLDB refuses: %v", err)
	}
	e.cluster.FailPuts(0, 0)
	long, cancelLong := context.WithTimeout(ctx, 20*time.Second)
	defer cancelLong()
	if err := e.tee.Drain(long); err != nil {
		t.Fatalf("the proxy did not write the committed rows once OpenMLDB took them again: %v", err)
	}
	if got := e.metricWith(t, held, "state", "committed"); got != 0 {
		t.Fatalf("committed rows held %v after the drain, want 0", got)
	}
	ids := map[int64]int{}
	for _, r := range e.tableRows(t, "topic1") {
		ids[r[2].I]++
	}
	for _, id := range []int64{0, 1, 2, 3, 4, 5, 10, 11, 12, 13} {
		if ids[id] != 1 {
			t.Fatalf("row %d stored %d times (ids %v)", id, ids[id], ids)
		}
	}
	if len(ids) != 10 {
		t.Fatalf("table ids %v, want 0..5 and 10..13", ids)
	}
}

func TestCompressedBatchesAllCodecs(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codecs := map[string]kgo.CompressionCodec{"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	id := 0
	for name, codec := range codecs {
		cl := e.client(t, kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(20*time.Millisecond))
		var recs []*kgo.Record
		for i := 0; i < 100; i++ {
			id++
			recs = append(recs, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(id))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if rows := e.tableRows(t, "topic1"); len(rows) != 400 {
		t.Fatalf("table has %d rows, want 400", len(rows))
	}
}

func TestDeadLetterAndSkipPolicies(t *testing.T) {
	e := startEnv(t, []config.Sink{
		{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"},
		{Topics: []string{"skipped"}, AutoCreate: true, OnInvalid: config.OnInvalidSkip},
	}, "dlqd", "skipped", "bad")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := e.client(t)
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	for _, topic := range []string{"dlqd", "skipped"} {
		// The first record creates the table; then a good and a bad record in one batch, all
		// into partition 0, so the bad record's offset is 2.
		if p := produceRaw(t, cl, topic, 0, rawBatch(seedRow(1))); p.ErrorCode != 0 {
			t.Fatalf("%s: first record: error code %d", topic, p.ErrorCode)
		}
		p := produceRaw(t, cl, topic, 0, rawBatch(seedRow(2), bad))
		if p.ErrorCode != 0 {
			t.Fatalf("%s: error code %d (%v), want success under a tolerant policy", topic, p.ErrorCode, p.ErrorMessage)
		}
		if got := e.topicRecords(t, topic); len(got) != 3 {
			t.Fatalf("%s: topic holds %d records, want all 3", topic, len(got))
		}
		if rows := e.tableRows(t, topic); len(rows) != 2 {
			t.Fatalf("%s: table holds %d rows, want the 2 valid ones", topic, len(rows))
		}
	}
	// The dead-letter record carries the original value and where it came from.
	dl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.ListenAddrs()...), kgo.ConsumeTopics("bad"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	var got []*kgo.Record
	for len(got) < 1 && ctx.Err() == nil {
		dl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	if len(got) != 1 || string(got[0].Value) != bad {
		t.Fatalf("dead letters %v", got)
	}
	h := map[string]string{}
	for _, kv := range got[0].Headers {
		h[kv.Key] = string(kv.Value)
	}
	if h["__connect.errors.topic"] != "dlqd" || h["__connect.errors.partition"] != "0" || h["__connect.errors.offset"] != "2" ||
		!strings.Contains(h["__connect.errors.exception.message"], "c1_int16") {
		t.Fatalf("dead-letter headers %v", h)
	}
	if got := e.topicRecords(t, "bad"); len(got) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1 (skip must not dead-letter)", len(got))
	}
}

func TestSchemalessJSONIntoExistingTable(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"plain"}, Format: config.FormatJSON}}, "plain")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := e.store.CreateTable(ctx, openmldb.TableSpec{DB: "kafka_test", Name: "plain", Columns: []openmldb.Column{
		{Name: "id", Type: openmldb.TypeBigInt, NotNull: true},
		{Name: "name", Type: openmldb.TypeString},
		{Name: "day", Type: openmldb.TypeDate},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cl := e.client(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "plain", Value: []byte(`{"id":7,"name":"x","day":"2022-04-27"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "plain", Value: []byte(`{"name":"no id"}`)}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("missing NOT NULL column: err = %v, want INVALID_RECORD", err)
	}
	rows := e.tableRows(t, "plain")
	if len(rows) != 1 || rows[0][0] != openmldb.Int(7) || rows[0][1] != openmldb.Str("x") || rows[0][2] != openmldb.Date(2022, 4, 27) {
		t.Fatalf("rows %+v", rows)
	}
}

func TestAcksZeroWritesBestEffort(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	cl := e.client(t, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		if len(e.tableRows(t, "topic1")) == 20 && len(e.topicRecords(t, "topic1")) == 20 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("acks=0: table %d rows, topic %d records, want 20 each", len(e.tableRows(t, "topic1")), len(e.topicRecords(t, "topic1")))
}

func TestNullTSColumnRejectedBeforeKafka(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true,
		Index: config.Index{Key: []string{"c7_string"}, TS: "c9_timestamp"}}}, "topic1")
	cl := e.client(t)
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(1))); p.ErrorCode != 0 {
		t.Fatalf("seed row: code %d", p.ErrorCode)
	}
	noTS := strings.Replace(seedMessage, `"c9_timestamp":1651051906000`, `"c9_timestamp":null`, 1)
	p := produceRaw(t, cl, "topic1", 0, rawBatch(noTS))
	if p.ErrorCode != kerr.InvalidRecord.Code || len(p.ErrorRecords) != 1 || !strings.Contains(*p.ErrorRecords[0].ErrorMessage, "c9_timestamp") {
		t.Fatalf("NULL TS column: code %d, record errors %+v", p.ErrorCode, p.ErrorRecords)
	}
	if got := e.topicRecords(t, "topic1"); len(got) != 1 {
		t.Fatalf("topic holds %d records, want only the valid one", len(got))
	}
}

// lockedBuffer is a log sink safe for the tee's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A producer sending invalid records over and over gets every batch rejected and counted, while
// the log gets at most rejectLogBurst lines a second for that table, then one saying how many it
// left out.
func TestRejectionLogIsRateLimited(t *testing.T) {
	logs := &lockedBuffer{}
	e := startEnvWith(t, func(o *tee.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	cl := e.client(t)
	bad := strings.Replace(seedMessage, `"c2_int32":2`, `"c2_int32":2.5`, 1)
	start := time.Now()
	const n = 30
	for i := 0; i < n; i++ {
		if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedMessage, bad)); p.ErrorCode != kerr.InvalidRecord.Code {
			t.Fatalf("batch %d: error code %d, want INVALID_RECORD", i, p.ErrorCode)
		}
	}
	elapsed := time.Since(start)
	lines := strings.Count(logs.String(), "rejected produce partition")
	if max := (int(elapsed/time.Second) + 1) * 10; lines < 1 || lines > max || lines >= n {
		t.Fatalf("%d rejection lines for %d rejections in %v, want 1..%d", lines, n, elapsed, max)
	}
	if got := e.metric(t, "okp_tee_partitions_rejected_total"); got != n {
		t.Fatalf("okp_tee_partitions_rejected_total = %v, want %d", got, n)
	}
	time.Sleep(time.Second)
	produceRaw(t, cl, "topic1", 0, rawBatch(seedMessage, bad))
	out := logs.String()
	if strings.Count(out, "rejected produce partition") != lines+1 || !strings.Contains(out, "suppressed=") {
		t.Fatalf("after a second: want one more line saying how many were suppressed; log:\n%s", out)
	}
}

// Records of one key with one event time, on an index with that TS column, read back newest =
// highest offset from tablets that apply the Puts of one socket read concurrently, as brpc does:
// each such Put waits for the answer to the one before it (openmldb tieGate). Every seed record
// ties: same c7_string, same c9_timestamp.
func TestTiedEventTimesReadNewestLastOnABrpcLikeTablet(t *testing.T) {
	const n = 400
	e, rows := produceTiedSeedRecords(t, config.TieOrderOffset, n)
	for i, r := range rows {
		if r[2].I != int64(n-1-i) {
			t.Fatalf("row %d of the scan (newest first) is record %d, want %d: records of one key and event time were stored out of offset order", i, r[2].I, n-1-i)
		}
	}
	if waits := e.metric(t, "okp_openmldb_tie_waits_total"); waits < 1 || waits > n-1 {
		t.Fatalf("okp_openmldb_tie_waits_total = %v, want 1..%d", waits, n-1)
	}
}

// tie_order: any sends tying rows at once: all are stored, none waited.
func TestTieOrderAnyDoesNotWait(t *testing.T) {
	const n = 400
	e, _ := produceTiedSeedRecords(t, config.TieOrderAny, n)
	if waits := e.metric(t, "okp_openmldb_tie_waits_total"); waits != 0 {
		t.Fatalf("okp_openmldb_tie_waits_total = %v with tie_order any, want 0", waits)
	}
}

// produceTiedSeedRecords produces n seed records (c3_int64 = 0..n-1, all with one key and event
// time) into partition 0 of topic1, teed with the given tie_order into a table indexed on
// c7_string with TS column c9_timestamp, on tablets that apply a socket read's Puts
// concurrently; it returns the key's rows, newest first, after checking all n are there.
func produceTiedSeedRecords(t *testing.T, tieOrder string, n int) (*env, []openmldb.Row) {
	t.Helper()
	e := startEnvOn(t, openmldbtest.Options{ConcurrentReads: true}, nil, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true,
		Index: config.Index{Key: []string{"c7_string"}, TS: "c9_timestamp"}, TieOrder: tieOrder}}, "topic1")
	cl := e.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: "topic1", Partition: 0, Value: []byte(seedRow(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	tb, err := e.store.Table("kafka_test", "topic1")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := e.store.Scan(ctx, tb, 0, "c77777", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("key c77777 has %d rows, want %d", len(rows), n)
	}
	return e, rows
}

// A connection's pipelined Produce requests reach OpenMLDB in offset order: a large request's
// rows (encoded off the event loop) are stored before those of a small request sent after it,
// even though the small one's could go out at once. The test cluster keeps a partition's rows in
// insertion order; all seed rows share one key, so they share one OpenMLDB partition.
func TestPipelinedProducesStoredInOffsetOrder(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	next := 1
	batch := func(n int) []byte {
		values := make([]string, n)
		for i := range values {
			values[i] = seedRow(next)
			next++
		}
		return rawBatch(values...)
	}
	var frames []byte
	sizes := []int{200, 1, 1, 150, 1} // >64 rows are encoded off the loop, 1 row on it
	for i, n := range sizes {
		req := produceRequest("topic1", batch(n))
		req.Version = 7
		// AppendRequest writes the size prefix at the start of dst: one frame at a time.
		frames = append(frames, kmsg.NewRequestFormatter(kmsg.FormatterClientID("order-test")).AppendRequest(nil, req, int32(i+1))...)
	}
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	for range sizes {
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(conn, body); err != nil {
			t.Fatal(err)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 7
		if err := resp.ReadFrom(body[4:]); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("response: %v %+v", err, resp.Topics)
		}
	}
	tb, err := e.store.Table("kafka_test", "topic1")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.cluster.Rows("kafka_test", "topic1")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != next {
		t.Fatalf("table holds %d rows, want %d", len(stored), next)
	}
	for i, b := range stored {
		r, err := openmldb.DecodeRow(tb.Columns, b)
		if err != nil {
			t.Fatal(err)
		}
		if r[2].I != int64(i) {
			t.Fatalf("row %d in insertion order has id %d: rows reached OpenMLDB out of offset order", i, r[2].I)
		}
	}
}

// Once its loop's own connection to the tablet is up, a small Produce's Puts take it (their
// responses are then read by the event loop, which answers the producer without a hand-off);
// until then they take the client's shared connection, and no row is lost or doubled.
func TestSmallProducesWriteOnTheirLoop(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := e.client(t)
	next := 0
	produce := func() {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(next))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		next++
	}
	until := time.Now().Add(10 * time.Second)
	for {
		produce()
		if onLanes, _ := e.store.PutCounts(); onLanes > 0 {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("after %d produces no Put ever took the event loop's own connection", next)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lane0, shared0 := e.store.PutCounts()
	for range 30 {
		produce()
	}
	lane1, shared1 := e.store.PutCounts()
	if lane1-lane0 != 30 || shared1 != shared0 {
		t.Fatalf("30 one-record produces sent %d Puts on the loop's connection and %d on the shared one; want 30 and 0",
			lane1-lane0, shared1-shared0)
	}
	if n, err := e.cluster.Count("kafka_test", "topic1"); err != nil || n != next {
		t.Fatalf("table holds %d rows (%v), want %d", n, err, next)
	}
}

// restart replaces the proxy and its tee with new ones on the same addresses, as a process
// restart would: clients reconnect, and nothing held by the old tee survives.
func (e *env) restart(t *testing.T, sinks []config.Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.proxy.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.tee.Close()
	e.reg = prometheus.NewRegistry()
	tee.RegisterPutCounters(e.reg, e.store)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tt, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, KafkaBootstrap: e.kafka.ListenAddrs(),
		Logger: logger, Metrics: tee.NewMetrics(e.reg)})
	if err != nil {
		t.Fatal(err)
	}
	e.tee = tt
	t.Cleanup(tt.Close)
	e.proxy, err = proxy.New(proxy.Options{Listen: e.addr, Bootstrap: e.kafka.ListenAddrs(), Hook: tt, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.proxy.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := e.proxy
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
}

// A transaction open across a proxy restart that writes to a teed topic cannot be committed
// through the new process: the rows it produced through the old one were never held there. The
// commit is answered UNKNOWN_PRODUCER_ID, the producer aborts (bumping its epoch) and goes on, and
// neither Kafka (read committed) nor OpenMLDB shows any of it; that holds whether the producer sent
// more batches after the restart (rows held here) or none (the coordinator lists the teed topic).
// A transaction on topics without a sink commits across the restart, and transactions begun after
// it commit as usual, also when the new process never saw the producer's previous EndTxn. Run
// with a client speaking KIP-890's transaction version 2 (kfake's default) and one limited to
// Kafka 3.7's protocol, deciding by the transactions listed open at start (with the clock margin
// set to an hour, so the clock cannot be what decides), and by the coordinator's clock when that
// listing is unavailable.
func TestTransactionOpenAcrossRestartIsRefused(t *testing.T) {
	t.Run("kip890", func(t *testing.T) { restartCase(t, false) })
	t.Run("kafka-3.7", func(t *testing.T) { restartCase(t, false, kgo.MaxVersions(kversion.V3_7_0())) })
	t.Run("by-clock", func(t *testing.T) { restartCase(t, true) })
}

func restartCase(t *testing.T, byClock bool, opts ...kgo.Opt) {
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnv(t, sinks, "topic1", "plain")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txnClient := func(id string) *kgo.Client {
		return e.client(t, append([]kgo.Opt{kgo.TransactionalID(id)}, opts...)...)
	}
	cl := txnClient("restart-app")
	quiet := txnClient("quiet-app") // produces before the restart only
	other := txnClient("plain-app")
	// later-app ends a transaction before the restart and begins its next one after it: the new
	// process never saw that start, and learns from the coordinator that it came after its own.
	later := txnClient("later-app")
	produceInTxn(t, ctx, later, 30, 1)
	if err := later.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	produceInTxn(t, ctx, cl, 10, 3)
	produceInTxn(t, ctx, quiet, 40, 2)
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(ctx, &kgo.Record{Topic: "plain", Value: []byte("not teed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	e.restart(t, sinks)
	if byClock {
		tee.ForgetOngoingAtStart(e.tee)
		tee.SetStartSkew(e.tee, 0)
	} else {
		tee.SetStartSkew(e.tee, time.Hour)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(13))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*kgo.Client{cl, quiet} {
		if err := c.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.UnknownProducerID) {
			t.Fatalf("commit of a transaction open across the restart: %v, want UNKNOWN_PRODUCER_ID", err)
		}
		if err := c.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Fatalf("abort after the refused commit: %v", err)
		}
	}
	if n := e.metric(t, "okp_tee_txn_commits_refused_total"); n != 2 {
		t.Fatalf("okp_tee_txn_commits_refused_total = %v, want 2", n)
	}
	if err := other.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit of a transaction without teed topics across the restart: %v", err)
	}

	produceInTxn(t, ctx, cl, 20, 2)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit of a transaction begun after the restart: %v", err)
	}
	produceInTxn(t, ctx, quiet, 41, 1)
	if err := quiet.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit of the next transaction of a refused producer: %v", err)
	}
	produceInTxn(t, ctx, later, 31, 1)
	if err := later.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit of a transaction begun after the restart, its start unseen: %v", err)
	}

	ids := map[int64]int{}
	for _, r := range e.tableRows(t, "topic1") {
		ids[r[2].I]++
	}
	want := []int64{0, 20, 21, 30, 31, 41}
	for _, id := range want {
		if ids[id] != 1 {
			t.Fatalf("table ids %v, want %v once each", ids, want)
		}
	}
	if len(ids) != len(want) {
		t.Fatalf("table ids %v, want %v once each", ids, want)
	}
	consumer := e.client(t, kgo.ConsumeTopics("topic1"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got int
	for got < len(want) {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			for _, id := range []string{"10", "11", "12", "13", "40"} {
				if strings.Contains(string(r.Value), `"c3_int64":`+id+`,`) {
					t.Errorf("read committed consumer saw record %s of a refused transaction", id)
				}
			}
		})
	}
}

// A dead-letter topic the tee cannot reach does not hold the producer's request for ever: at the
// request's timeout the partition is answered with the retriable error, naming the dead-letter
// topic.
func TestUnreachableDeadLetterTopicAnswersAtTheDeadline(t *testing.T) {
	// A broker that speaks only TLS, which the tee's client (configured without) cannot reach.
	tlsOnly, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bad"), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{testpki.SelfSigned(t, "kafka")}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsOnly.Close)
	e := startEnvWith(t, func(o *tee.Options) { o.KafkaBootstrap = tlsOnly.ListenAddrs() },
		[]config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"}}, "dlqd", "bad")
	cl := e.client(t)
	if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(1))); p.ErrorCode != 0 {
		t.Fatalf("first record: error code %d", p.ErrorCode)
	}
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	start := time.Now()
	p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(2), bad))
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("answered after %v, past the request's 5 s timeout", took)
	}
	if p.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code || p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "dead-letter topic bad") {
		t.Fatalf("error code %d (%v), want NOT_ENOUGH_REPLICAS_AFTER_APPEND naming the dead-letter topic", p.ErrorCode, p.ErrorMessage)
	}
}

// endOffsets sums the end offsets of topic's partitions at the broker: its records, control
// records (transaction markers) included.
func (e *env) endOffsets(t *testing.T, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for p := int32(0); p < partitions; p++ {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = p, -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	resp, err := lo.RequestWith(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, p := range resp.Topics[0].Partitions {
		want += p.Offset
	}
	return want
}
