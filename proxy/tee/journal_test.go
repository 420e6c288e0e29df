package tee_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// journalRows counts the rows in the journal file (0 when there is none).
func journalRows(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "committed-rows.json"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rows []string `json:"rows"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("journal: %v", err)
	}
	n := 0
	for _, g := range doc.Groups {
		n += len(g.Rows)
	}
	return n
}

// Rows of a committed transaction that OpenMLDB refuses are kept in the journal when the proxy
// takes them over; a proxy stopped before OpenMLDB takes them loses none of them: the next one
// (same journal directory) writes them, once each, and empties the journal. Two proxies cannot
// share a directory, and an unreadable journal stops the start with an error naming it.
func TestJournalKeepsCommittedRowsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, sinks, "topic1")
	tee.SetCommitTimeout(e.tee, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir}); err == nil ||
		!strings.Contains(err.Error(), "in use by another proxy") {
		t.Fatalf("second tee on the same journal directory: %v", err)
	}

	cl := e.client(t, kgo.TransactionalID("journal-app"))
	produceInTxn(t, ctx, cl, 10, 4)
	e.cluster.FailPuts(1<<30, 999)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("EndTxn with OpenMLDB refusing: %v, want REQUEST_TIMED_OUT", err)
	}
	if n := journalRows(t, dir); n != 4 {
		t.Fatalf("journal holds %d rows after the commit, want 4", n)
	}
	_ = cl.EndTransaction(ctx, kgo.TryAbort) // kgo's abort after an unconfirmed commit

	// Shutdown while OpenMLDB still refuses: the drain does not wait, nothing is counted lost.
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := e.tee.Drain(short); err != nil {
		t.Fatalf("drain with a journal: %v", err)
	}
	e.tee.Close()
	if lost := e.metricWith(t, "okp_tee_txn_rows_dropped_total", "reason", "unwritable"); lost != 0 {
		t.Fatalf("%v rows counted lost at close, want 0 (they are journaled)", lost)
	}
	if n := journalRows(t, dir); n != 4 {
		t.Fatalf("journal holds %d rows after close, want 4", n)
	}

	// The next start, OpenMLDB healthy again.
	e.cluster.FailPuts(0, 0)
	next, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	deadline := time.Now().Add(20 * time.Second)
	for journalRows(t, dir) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the journaled rows were not written after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkTableIDsOnce(t, e, "want 0 and 10..13", 0, 10, 11, 12, 13)
	next.Close()

	if err := os.WriteFile(filepath.Join(dir, "committed-rows.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir}); err == nil ||
		!strings.Contains(err.Error(), "committed-rows.json") {
		t.Fatalf("start with an unreadable journal: %v", err)
	}
}

// journalPendingRows counts the rows of transactions the journal keeps as pending (their commit
// was at the broker when the file was written).
func journalPendingRows(t *testing.T, b []byte) int {
	t.Helper()
	var doc struct {
		Pending []struct {
			Groups []struct {
				Rows []string `json:"rows"`
			} `json:"groups"`
		} `json:"pending"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("journal: %v", err)
	}
	n := 0
	for _, p := range doc.Pending {
		for _, g := range p.Groups {
			n += len(g.Rows)
		}
	}
	return n
}

// commitInFlight produces n rows in a transaction through the proxy, then commits while kfake
// holds the EndTxn, and returns the journal as it is on disk at that moment (what a crash there
// leaves; its pending rows must have grown by n), the client's EndTransaction outcome, and
// release, which lets kfake handle the EndTxn (answered with code, or processed when code is 0).
func commitInFlight(t *testing.T, ctx context.Context, e *env, cl *kgo.Client, dir string, first, n int, code int16) (snapshot []byte, ended chan error, release func()) {
	t.Helper()
	before := 0
	if b, err := os.ReadFile(filepath.Join(dir, "committed-rows.json")); err == nil {
		before = journalPendingRows(t, b)
	}
	produceInTxn(t, ctx, cl, first, n)
	arrived, released := make(chan struct{}), make(chan struct{})
	e.kafka.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		close(arrived)
		e.kafka.SleepControl(func() { <-released })
		if code == 0 {
			e.kafka.DropControl() // not handled: the cluster processes it, and this runs once
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = code
		return resp, nil, true
	})
	ended = make(chan error, 1)
	go func() { ended <- cl.EndTransaction(ctx, kgo.TryCommit) }()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the EndTxn did not reach the broker")
	}
	snapshot, err := os.ReadFile(filepath.Join(dir, "committed-rows.json"))
	if err != nil {
		t.Fatalf("no journal while the commit is at the broker: %v", err)
	}
	if got := journalPendingRows(t, snapshot); got != before+n {
		t.Fatalf("journal lists %d rows as pending while the commit is at the broker, want %d", got, before+n)
	}
	return snapshot, ended, func() { close(released) }
}

// commitWithPutsRefused commits a transaction (rows first..first+n-1, id) that Kafka commits
// while OpenMLDB refuses every Put, so the EndTxn is answered REQUEST_TIMED_OUT. It returns the
// journal as it was while the commit was at the broker (standing for a crash then) and leaves
// Puts refused.
func commitWithPutsRefused(t *testing.T, ctx context.Context, e *env, dir, id string, first, n int) []byte {
	t.Helper()
	cl := e.client(t, kgo.TransactionalID(id))
	snapshot, ended, release := commitInFlight(t, ctx, e, cl, dir, first, n, 0)
	e.cluster.FailPuts(1<<30, 999)
	release()
	if err := <-ended; !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("commit with OpenMLDB refusing: %v, want REQUEST_TIMED_OUT", err)
	}
	_ = cl.EndTransaction(ctx, kgo.TryAbort)
	return snapshot
}

// A crash while a commit is at the broker leaves Kafka's decision unknown to the proxy; its rows
// are journaled before the EndTxn is forwarded, with where to read the outcome back. A new
// process on that journal reads the transaction's marker: rows of a committed transaction are
// written (once), rows of one the coordinator aborted are dropped. The journal as it was on disk
// while the EndTxn waited at the broker stands for the crash.
func TestJournalDecidesCommitsInFlightAtACrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, dir, sinks := startJournalEnv(t, ctx)

	// Committed: kfake commits once released; the proxy that "crashed" never writes the rows
	// (OpenMLDB refuses them until it is closed).
	committedSnap := commitWithPutsRefused(t, ctx, e, dir, "in-flight-commit", 10, 3)

	// Aborted: the EndTxn is answered with a retriable error and never processed; a new producer
	// with the same transactional id fences the transaction, and the coordinator aborts it.
	e.cluster.FailPuts(0, 0)
	aborter := e.client(t, kgo.TransactionalID("in-flight-abort"))
	abortedSnap, ended, release := commitInFlight(t, ctx, e, aborter, dir, 20, 2, kerr.NotCoordinator.Code)
	aborter.Close() // stops retrying the commit
	release()
	<-ended
	fencer := e.client(t, kgo.TransactionalID("in-flight-abort"))
	produceInTxn(t, ctx, fencer, 30, 1)
	if err := fencer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	stopEnvTee(ctx, e)

	// The crash state: both transactions pending, as each snapshot has one of them.
	var doc, other map[string]json.RawMessage
	if err := json.Unmarshal(committedSnap, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(abortedSnap, &other); err != nil {
		t.Fatal(err)
	}
	var pa, pb []json.RawMessage
	if err := json.Unmarshal(doc["pending"], &pa); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(other["pending"], &pb); err != nil {
		t.Fatal(err)
	}
	doc["pending"], _ = json.Marshal(append(pa, pb...))
	// And rows owed to a table dropped meanwhile, which the start sets aside.
	var first struct {
		Groups []map[string]json.RawMessage `json:"groups"`
	}
	if err := json.Unmarshal(pa[0], &first); err != nil {
		t.Fatal(err)
	}
	first.Groups[0]["table"] = json.RawMessage(`"dropped_table"`)
	doc["groups"], _ = json.Marshal(first.Groups[:1])
	crash, _ := json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(dir, "committed-rows.json"), crash, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := journalPendingRows(t, crash); got != 5 {
		t.Fatalf("crash journal has %d pending rows, want 5", got)
	}

	// A start that cannot reach Kafka decides nothing and keeps the pending rows in the journal,
	// also across the save that sets the dropped table's rows aside.
	blind, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir, KafkaBootstrap: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	blind.Close()
	kept, err := os.ReadFile(filepath.Join(dir, "committed-rows.json"))
	if err != nil || journalPendingRows(t, kept) != 5 {
		t.Fatalf("journal after a start without Kafka: %v %s; want the 5 pending rows kept", err, kept)
	}
	if f, err := tee.ReadJournal(dir); err != nil || len(f.SetAside) != 1 || f.SetAside[0].Owed[0].Table != "dropped_table" || f.Version != 3 {
		t.Fatalf("journal after a start without Kafka: %+v %v; want version 3 with the dropped table's rows set aside", f, err)
	}

	next, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir, KafkaBootstrap: e.kafka.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	waitJournalSettled(t, dir) // the journaled transactions decided and written
	checkTableIDsOnce(t, e, "want 0, the committed 10..12 and the fencer's 30; never the aborted 20, 21", 0, 10, 11, 12, 30)
}

// checkTableIDsOnce fails unless topic1's table holds exactly the rows with these ids, once each.
func checkTableIDsOnce(t *testing.T, e *env, what string, want ...int64) {
	t.Helper()
	ids := map[int64]int{}
	for _, r := range e.tableRows(t, "topic1") {
		ids[r[2].I]++
	}
	for _, id := range want {
		if ids[id] != 1 {
			t.Fatalf("row %d stored %d times (ids %v)", id, ids[id], ids)
		}
	}
	if len(ids) != len(want) {
		t.Fatalf("table ids %v: %s", ids, what)
	}
}

// A client that goes away while its commit is at the broker never hears the answer, nor does
// the proxy (the session ends with the connection). Kafka committed; when the next producer with
// the same transactional id fences the old epoch, the proxy must not drop the rows as fenced: it
// reads the transaction's marker and writes them. No journal is involved.
func TestCommitWhoseAnswerNeverCameIsDecidedByItsMarker(t *testing.T) {
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnvWith(t, nil, sinks, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gone := e.client(t, kgo.TransactionalID("gone-client"))
	produceInTxn(t, ctx, gone, 40, 3)
	arrived, released := make(chan struct{}), make(chan struct{})
	e.kafka.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		close(arrived)
		e.kafka.SleepControl(func() { <-released })
		e.kafka.DropControl()
		return nil, nil, false
	})
	go func() { _ = gone.EndTransaction(ctx, kgo.TryCommit) }()
	<-arrived
	gone.Close()
	close(released)
	// The commit is done once its records are readable as committed (kfake directly).
	direct, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.ListenAddrs()...), kgo.ConsumeTopics("topic1"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for seen := 0; seen < 3; {
		fs := direct.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the held commit never became visible")
		}
		seen += fs.NumRecords()
	}
	fencer := e.client(t, kgo.TransactionalID("gone-client"))
	produceInTxn(t, ctx, fencer, 50, 1)
	if err := fencer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(e.tableRows(t, "topic1")) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	checkTableIDsOnce(t, e, "want the gone client's committed 40..42 and the fencer's 50", 40, 41, 42, 50)
	if dropped := e.metricWith(t, "okp_tee_txn_rows_dropped_total", "reason", "fenced"); dropped != 0 {
		t.Fatalf("%v rows counted as dropped by fencing, want 0", dropped)
	}
}

// A commit whose rows cannot be journaled before it is forwarded (here the journal's name is
// taken by a directory) is not forwarded: it is answered COORDINATOR_LOAD_IN_PROGRESS, and
// nothing of the transaction is committed or stored.
func TestCommitNotForwardedWhenItsRowsCannotBeJournaled(t *testing.T) {
	dir := t.TempDir()
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, sinks, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var forwarded atomic.Int32
	e.kafka.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		forwarded.Add(1)
		e.kafka.KeepControl()
		return nil, nil, false
	})
	cl := e.client(t, kgo.TransactionalID("no-journal-room"), kgo.RequestRetries(1))
	produceInTxn(t, ctx, cl, 60, 2)
	if err := os.Mkdir(filepath.Join(dir, "committed-rows.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.CoordinatorLoadInProgress) {
		t.Fatalf("commit with the journal unwritable: %v, want COORDINATOR_LOAD_IN_PROGRESS", err)
	}
	if n := forwarded.Load(); n != 0 {
		t.Fatalf("%d EndTxn commits reached the broker, want none", n)
	}
	if rows := e.tableRows(t, "topic1"); len(rows) != 0 {
		t.Fatalf("table holds %d rows of a transaction that was not committed", len(rows))
	}
}

// With a journal directory, a batch answered with rows missing is remembered across a graceful
// restart: the producer's retry reaching the next process writes only the missing rows (before,
// a restart forgot the ledger and the retry wrote every row again).
func TestRetryAfterARestartWritesOnlyTheMissingRows(t *testing.T) {
	dir := t.TempDir()
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, sinks, "topic1")
	cl := e.client(t)
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	batch := rawProducerBatch(888, 0, 0, seedRow(1), seedRow(2), seedRow(3))
	e.cluster.FailPuts(1, openmldb.CodePutFailed)
	if p := produceRaw(t, cl, "topic1", 0, batch); p.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("first attempt: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", p.ErrorCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.tee.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	e.tee.Close()

	next, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	// The retry, as the broker answers it (a duplicate of the appended batch: success).
	step := next.Begin(ctx, proxy.ConnInfo{RemoteAddr: "127.0.0.1:1"}, produceRequest("topic1", batch))
	if step.FinishAsync == nil {
		t.Fatalf("retry planned as %+v", step)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	resp.Topics = []kmsg.ProduceResponseTopic{{Topic: "topic1", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0, BaseOffset: 1}}}}
	answered := make(chan kmsg.Response, 1)
	step.FinishAsync(ctx, resp, func(r kmsg.Response) { answered <- r })
	if code := (<-answered).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("retry at the next start: code %d", code)
	}
	checkTableIDsOnce(t, e, "want 0..3 once each", 0, 1, 2, 3)
}
