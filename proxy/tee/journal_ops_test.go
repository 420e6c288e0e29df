package tee_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// waitJournalGone waits until the journal file is removed (everything in it was written).
func waitJournalGone(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(dir, "committed-rows.json"))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "committed-rows.json"))
			t.Fatalf("the journal was not emptied (its rows decided and written): %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startJournalEnv starts the env with a journal directory and a sink for topic1, and creates
// topic1's table by producing seed row 0 through the proxy.
func startJournalEnv(t *testing.T, ctx context.Context) (e *env, dir string, sinks []config.Sink) {
	t.Helper()
	dir = t.TempDir()
	sinks = []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e = startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, sinks, "topic1")
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return e, dir, sinks
}

// loseCommitAnswer produces rows first..first+n-1 to topic1 partition 0 in a transaction with id
// and commits; the EndTxn is answered with an error and never processed, and the client goes
// away, so the proxy never learns the outcome: the commit stays pending, and the journal keeps
// it at close.
func loseCommitAnswer(t *testing.T, ctx context.Context, e *env, dir, id string, first, n int) {
	t.Helper()
	cl := e.client(t, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(10*time.Minute))
	_, ended, release := commitInFlight(t, ctx, e, cl, dir, first, n, kerr.NotCoordinator.Code)
	cl.Close()
	release()
	<-ended
}

// directClient is a client of kfake itself (not through the proxy) writing to partition 0.
func directClient(t *testing.T, e *env, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.kafka.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// fenceAtBroker starts a producer with transactional id id straight at the broker, which fences
// the id's earlier producer (the coordinator aborts its open transaction, writing an ABORT marker
// of a later epoch), and aborts a transaction of its own that is never teed.
func fenceAtBroker(t *testing.T, ctx context.Context, e *env, id string) {
	t.Helper()
	fencer := directClient(t, e, kgo.TransactionalID(id))
	if err := fencer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := fencer.ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte("straight to the broker")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := fencer.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// stopEnvTee stops the env's tee as a proxy does with a short grace period: its writes get a
// second to finish, then it closes (the journal keeps what is left).
func stopEnvTee(ctx context.Context, e *env) {
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = e.tee.Drain(short)
	e.tee.Close()
}

// dropTopic1 drops topic1's table and returns it as it was, to recreate it with its columns.
func dropTopic1(t *testing.T, ctx context.Context, e *env) *openmldb.Table {
	t.Helper()
	tb, err := e.store.Table("kafka_test", "topic1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DropTable(ctx, "kafka_test", "topic1"); err != nil {
		t.Fatal(err)
	}
	return tb
}

// startOnJournal starts a tee on dir, as a restarted proxy (logging to logger, if set), with its
// metrics in a new e.reg; it is closed at the test's end, if not before.
func startOnJournal(t *testing.T, e *env, dir string, sinks []config.Sink, logger *slog.Logger) *tee.Tee {
	t.Helper()
	e.reg = prometheus.NewRegistry()
	tt, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir,
		KafkaBootstrap: e.kafka.ListenAddrs(), Logger: logger, Metrics: tee.NewMetrics(e.reg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tt.Close)
	return tt
}

// waitTableIDs waits until topic1's table holds exactly the rows with these ids, once each.
func waitTableIDs(t *testing.T, e *env, what string, want ...int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := e.cluster.Count("kafka_test", "topic1")
		if err == nil && n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkTableIDsOnce(t, e, what, want...)
}

// waitJournalSettled waits until the journal has no rows owed or pending (rows set aside stay).
func waitJournalSettled(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := tee.ReadJournal(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Owed) == 0 && len(f.Pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal's rows were not decided and written: %+v", f)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Retention took the batches of two transactions whose commit answer the proxy never saw, so the
// log cannot tell how they ended and the proxy keeps them undecided; a third one, in the same
// partition after them, still has its batch there, and the proxy waits for its marker (and
// refuses to let an operator settle it), which a fencing producer then brings. The operator, who
// learned the two outcomes elsewhere, settles them with the journal command's functions: one
// through the running proxy (which writes its rows at once), one with the proxy stopped, on the
// file. Only the committed transaction's rows are ever stored, once.
func TestOperatorSettlesTransactionsTheLogCannotDecide(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, dir, sinks := startJournalEnv(t, ctx)
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	loseCommitAnswer(t, ctx, e, dir, "op-commit", 10, 3)
	loseCommitAnswer(t, ctx, e, dir, "op-abort", 20, 2)

	// Retention: every record of topic1 so far is deleted.
	adm := kadm.NewClient(e.client(t))
	ends, err := adm.ListEndOffsets(ctx, "topic1")
	if err != nil {
		t.Fatal(err)
	}
	var upTo kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) { upTo.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
	deleted, err := adm.DeleteRecords(ctx, upTo)
	if err != nil {
		t.Fatal(err)
	}
	if err := deleted.Error(); err != nil {
		t.Fatal(err)
	}
	loseCommitAnswer(t, ctx, e, dir, "op-waiting", 30, 1)

	stopEnvTee(ctx, e)
	c, err := tee.ReadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pending) != 3 || c.Version != 2 || len(c.Owed) != 0 || len(c.SetAside) != 0 {
		t.Fatalf("journal read back: %+v; want version 2 with the three pending transactions", c)
	}
	pending := map[string]tee.JournalTransaction{} // the file lists them in no particular order
	for _, p := range c.Pending {
		pending[p.TransactionalID] = p
	}
	for id, rows := range map[string]int{"op-commit": 3, "op-abort": 2, "op-waiting": 1} {
		p := pending[id]
		if tee.JournalRows(p.Groups) != rows || p.Topic != "topic1" || p.Partition != 0 || p.Groups[0].Table != "topic1" {
			t.Fatalf("pending %s: %+v, want %d rows of kafka_test.topic1, read from partition 0", id, p, rows)
		}
	}

	// A start reads the log: it cannot tell for the first two, and waits for the third's marker.
	running := startOnJournal(t, e, dir, sinks, logger)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "out of range (retention); its rows stay undecided") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not report the two transactions undecided; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.metric(t, "okp_tee_txn_undecidable"); n != 2 {
		t.Fatalf("okp_tee_txn_undecidable = %v, want 2", n)
	}
	status, live, err := tee.AskRunningStatus(dir)
	if err != nil || !live || len(status) != 3 {
		t.Fatalf("the running proxy's status: %+v live=%v %v; want the three transactions", status, live, err)
	}
	for _, st := range status {
		if gaveUp := strings.Contains(st.Undecidable, "out of range (retention took its batch)"); gaveUp != (st.TransactionalID != "op-waiting") {
			t.Fatalf("status of %s: %q; want the first two given up on, op-waiting still read", st.TransactionalID, st.Undecidable)
		}
	}
	byID := tee.SelectPending
	if _, _, err := tee.DecidePending(dir, byID("op-waiting"), false); err == nil || !strings.Contains(err.Error(), "still being read from topic1 partition 0") {
		t.Fatalf("settling a transaction whose marker is still awaited: %v; want a refusal", err)
	}
	if _, _, err := tee.DecidePending(dir, byID("op-elsewhere"), true); err == nil ||
		!strings.Contains(err.Error(), `"op-commit" (producer id`) || !strings.Contains(err.Error(), `"op-waiting" (producer id`) {
		t.Fatalf("settling a transaction the proxy does not have: %v; want an error listing the pending ones", err)
	}
	pid := pending["op-commit"].ProducerID
	if _, _, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-commit", ProducerID: pid + 1000, Epoch: -1, Offset: -1}, true); err == nil {
		t.Fatal("settling with another producer id succeeded")
	}
	tx, live, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-commit", ProducerID: pid, Epoch: 0, Offset: pending["op-commit"].Offset}, true)
	if err != nil || !live || tx.TransactionalID != "op-commit" || tee.JournalRows(tx.Groups) != 3 {
		t.Fatalf("commit op-commit through the running proxy: %+v live=%v %v", tx, live, err)
	}
	waitTableIDs(t, e, "want 0 and the committed 10..12, written by the running proxy", 0, 10, 11, 12)
	if n := e.metric(t, "okp_tee_txn_undecidable"); n != 1 {
		t.Fatalf("okp_tee_txn_undecidable = %v after settling one, want 1", n)
	}

	// A new producer with op-waiting's transactional id, straight to the broker, fences it: the
	// coordinator aborts it, and the marker reader, which read on past the offsets retention
	// took, finds the marker and drops its rows.
	fenceAtBroker(t, ctx, e, "op-waiting")
	deadline = time.Now().Add(30 * time.Second)
	for {
		c, err := tee.ReadJournal(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Pending) == 1 && c.Pending[0].TransactionalID == "op-abort" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("op-waiting was not decided by its abort marker: %+v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	running.Close()

	// The proxy stopped: the file is changed directly.
	if _, live, err := tee.DecidePending(dir, byID("op-abort"), false); err != nil || live {
		t.Fatalf("abort op-abort on the file: live=%v %v", live, err)
	}
	if c, err := tee.ReadJournal(dir); err != nil || c.Version != 0 {
		t.Fatalf("journal after settling all: %+v %v; want no file (nothing owed, pending or set aside)", c, err)
	}
	if _, _, err := tee.DecidePending(dir, byID("op-abort"), false); err == nil || !strings.Contains(err.Error(), "no transaction is pending") {
		t.Fatalf("settling again: %v", err)
	}
	startOnJournal(t, e, dir, sinks, logger)
	time.Sleep(300 * time.Millisecond)
	checkTableIDsOnce(t, e, "want 0 and the committed 10..12; never the aborted 20, 21 or 30", 0, 10, 11, 12)
}

// Rows owed to a table that was dropped are set aside in the journal at the next start.
// Restoring them while the table is still missing is refused and changes nothing, and so is a
// restore whose journal write fails; once the table is recreated with the same columns, the
// running proxy takes them (the journal on disk has them owed as soon as the restore is
// answered) and writes them, once: a second restore finds nothing, and a later start writes
// nothing again.
func TestOperatorRestoresSetAsideRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, dir, sinks := startJournalEnv(t, ctx)
	cl := e.client(t, kgo.TransactionalID("restore-app"))
	produceInTxn(t, ctx, cl, 10, 3)
	e.cluster.FailPuts(1<<30, 999)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("EndTxn with OpenMLDB refusing: %v, want REQUEST_TIMED_OUT", err)
	}
	_ = cl.EndTransaction(ctx, kgo.TryAbort)
	stopEnvTee(ctx, e)
	e.cluster.FailPuts(0, 0)

	tb := dropTopic1(t, ctx, e)
	aside := startOnJournal(t, e, dir, sinks, nil)
	c, err := tee.ReadJournal(dir)
	if err != nil || len(c.Owed) != 0 || len(c.SetAside) != 1 || tee.JournalRows(c.SetAside[0].Owed) != 3 || c.SetAside[0].Owed[0].Table != "topic1" ||
		len(c.SetAside[0].Why) != 1 || !strings.Contains(c.SetAside[0].Why[0], "kafka_test.topic1 (3 rows)") {
		t.Fatalf("after a start without the table: %+v %v; want the 3 rows set aside, saying why", c, err)
	}
	id := c.SetAside[0].ID
	if n := e.metric(t, "okp_tee_journal_rows_set_aside"); n != 3 {
		t.Fatalf("okp_tee_journal_rows_set_aside = %v, want 3", n)
	}
	if _, _, err := tee.RestoreSetAside(dir, "2020-01-01T00:00:00Z"); err == nil || !strings.Contains(err.Error(), "set aside: "+id) {
		t.Fatalf("restoring an id nothing is set aside under: %v; want an error listing %s", err, id)
	}
	if _, _, err := tee.RestoreSetAside(dir, id); err == nil || !strings.Contains(err.Error(), "kafka_test.topic1 (3 rows) still cannot be written") {
		t.Fatalf("restore before the table is back: %v; want a refusal naming the table", err)
	}
	if c, err := tee.ReadJournal(dir); err != nil || len(c.SetAside) != 1 {
		t.Fatalf("a refused restore changed the journal: %+v %v", c, err)
	}

	// Recreated with the same columns: the running proxy takes the rows and writes them.
	if _, err := e.store.CreateTable(ctx, openmldb.TableSpec{DB: "kafka_test", Name: "topic1", Columns: tb.Columns}); err != nil {
		t.Fatal(err)
	}
	// A journal that cannot be rewritten (a directory in the file's way): nothing is taken.
	journalPath := filepath.Join(dir, "committed-rows.json")
	if err := os.Rename(journalPath, journalPath+".kept"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(journalPath, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tee.RestoreSetAside(dir, id); err == nil || !strings.Contains(err.Error(), "nothing was restored") {
		t.Fatalf("restore with the journal unwritable: %v", err)
	}
	if err := os.Remove(journalPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(journalPath+".kept", journalPath); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n, err := e.cluster.Count("kafka_test", "topic1"); err != nil || n != 0 {
		t.Fatalf("a restore the journal did not take wrote %d rows (%v)", n, err)
	}

	// Restored with OpenMLDB refusing writes: the journal on disk has the rows owed, and no
	// longer set aside, as soon as the restore is answered.
	e.cluster.FailPuts(1<<30, 999)
	a, live, err := tee.RestoreSetAside(dir, id)
	if err != nil || !live || tee.JournalRows(a.Owed) != 3 {
		t.Fatalf("restore: %+v live=%v %v", a, live, err)
	}
	if c, err := tee.ReadJournal(dir); err != nil || tee.JournalRows(c.Owed) != 3 || len(c.SetAside) != 0 {
		t.Fatalf("journal right after the restore: %+v %v; want the 3 rows owed and nothing set aside", c, err)
	}
	if n := e.metric(t, "okp_tee_journal_rows_set_aside"); n != 0 {
		t.Fatalf("okp_tee_journal_rows_set_aside = %v after the restore, want 0", n)
	}
	e.cluster.FailPuts(0, 0)
	if _, _, err := tee.RestoreSetAside(dir, id); err == nil {
		t.Fatal("restoring the same rows twice succeeded")
	}
	waitTableIDs(t, e, "want 10..12 (row 0 went with the dropped table)", 10, 11, 12)
	waitJournalGone(t, dir) // nothing owed, nothing set aside: no file
	aside.Close()
	startOnJournal(t, e, dir, sinks, nil)
	time.Sleep(300 * time.Millisecond)
	checkTableIDsOnce(t, e, "after another start: still 10..12 once each", 10, 11, 12)
}

// The journal socket is the proxy's user's only, and a client that connects and sends nothing
// neither holds up Close (which a shutdown's grace period bounds) nor leaves the socket behind.
func TestJournalSocketSilentClientDoesNotHoldClose(t *testing.T) {
	dir := t.TempDir()
	e := startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}, "topic1")
	sock := filepath.Join(dir, "journal.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal socket: %v %v; want a socket with mode 0600", fi, err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // accepted, and being read
	start := time.Now()
	e.tee.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v with a silent client on the journal socket", d)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is still there after Close: %v", err)
	}
}

// The marker reader gives up, and lets an operator settle, where what the log shows cannot be
// trusted to be the transaction's outcome: the producer's first batch from the journaled offset
// on is at another offset (its batch compacted away and a later one of the producer's found),
// and the producer's first marker after its batch has an epoch the transaction cannot have.
// Both are settled through the running proxy; only the committed one's rows are stored.
func TestOperatorSettlesWhenTheLogCannotBeTrusted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, dir, sinks := startJournalEnv(t, ctx)
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A record of another producer first, before the transactions' batches.
	filler, err := directClient(t, e).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte("straight to the broker")}).First()
	if err != nil {
		t.Fatal(err)
	}
	loseCommitAnswer(t, ctx, e, dir, "op-moved", 10, 2)
	loseCommitAnswer(t, ctx, e, dir, "op-epoch", 20, 1)
	stopEnvTee(ctx, e)
	// op-epoch is fenced: the coordinator aborts it, with a marker of the next epoch.
	fenceAtBroker(t, ctx, e, "op-epoch")

	// The journal as a proxy would have it had op-moved's batch been compacted away (the offset
	// it names holds another producer's record, and the producer's first one after it is at
	// another offset) and op-epoch journaled with a later epoch than its marker's.
	path := filepath.Join(dir, "committed-rows.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // producer ids do not fit a float64
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	num := func(v any) int64 {
		n, err := v.(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, p := range doc["pending"].([]any) {
		p := p.(map[string]any)
		switch p["transactional_id"] {
		case "op-moved":
			if num(p["offset"]) <= filler.Offset {
				t.Fatalf("op-moved's batch at offset %v, want after the other producer's record at %d", p["offset"], filler.Offset)
			}
			p["offset"] = filler.Offset
		case "op-epoch":
			p["epoch"] = num(p["epoch"]) + 5
		}
	}
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	startOnJournal(t, e, dir, sinks, logger)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "its batch is no longer in the log (compacted or deleted)") ||
		!strings.Contains(logs.String(), "has another epoch; its rows stay undecided") {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not report both transactions undecided; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.metric(t, "okp_tee_txn_undecidable"); n != 2 {
		t.Fatalf("okp_tee_txn_undecidable = %v, want 2", n)
	}
	if _, live, err := tee.DecidePending(dir, tee.SelectPending("op-moved"), true); err != nil || !live {
		t.Fatalf("commit op-moved through the running proxy: live=%v %v", live, err)
	}
	if _, live, err := tee.DecidePending(dir, tee.SelectPending("op-epoch"), false); err != nil || !live {
		t.Fatalf("abort op-epoch through the running proxy: live=%v %v", live, err)
	}
	waitTableIDs(t, e, "want 0 and the committed 10, 11; never the aborted 20", 0, 10, 11)
	waitJournalGone(t, dir)
	if n := e.metric(t, "okp_tee_txn_undecidable"); n != 0 {
		t.Fatalf("okp_tee_txn_undecidable = %v once both are settled, want 0", n)
	}
}

// A transaction whose commit was at the broker when the proxy went down, and whose table was
// dropped before the next start, is set aside with its outcome still unknown. Once the table is
// back and the operator restores it, the running proxy reads its marker like a start does: Kafka
// committed it, so its rows are written, once, and the journal empties.
func TestOperatorRestoresAPendingTransactionItsMarkerDecides(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, dir, sinks := startJournalEnv(t, ctx)

	// Kafka commits; the proxy "crashes" with the commit at the broker (the journal as it was
	// then stands for the crash), and OpenMLDB refuses the rows until then.
	crash := commitWithPutsRefused(t, ctx, e, dir, "restored-commit", 40, 3)
	stopEnvTee(ctx, e)
	e.cluster.FailPuts(0, 0)
	if err := os.WriteFile(filepath.Join(dir, "committed-rows.json"), crash, 0o600); err != nil {
		t.Fatal(err)
	}

	tb := dropTopic1(t, ctx, e)
	running := startOnJournal(t, e, dir, sinks, nil)
	c, err := tee.ReadJournal(dir)
	if err != nil || len(c.Pending) != 0 || len(c.SetAside) != 1 || len(c.SetAside[0].Pending) != 1 ||
		c.SetAside[0].Pending[0].TransactionalID != "restored-commit" || len(c.SetAside[0].Why) != 1 ||
		!strings.Contains(c.SetAside[0].Why[0], "commit outcome unknown") {
		t.Fatalf("after a start without the table: %+v %v; want the pending transaction set aside, outcome unknown", c, err)
	}
	if n := e.metric(t, "okp_tee_journal_rows_set_aside"); n != 3 {
		t.Fatalf("okp_tee_journal_rows_set_aside = %v, want 3", n)
	}

	if _, err := e.store.CreateTable(ctx, openmldb.TableSpec{DB: "kafka_test", Name: "topic1", Columns: tb.Columns}); err != nil {
		t.Fatal(err)
	}
	a, live, err := tee.RestoreSetAside(dir, c.SetAside[0].ID)
	if err != nil || !live || len(a.Pending) != 1 || tee.JournalRows(a.Pending[0].Groups) != 3 {
		t.Fatalf("restore through the running proxy: %+v live=%v %v", a, live, err)
	}
	waitTableIDs(t, e, "want the committed 40..42 (row 0 went with the dropped table)", 40, 41, 42)
	waitJournalGone(t, dir)
	if n := e.metric(t, "okp_tee_journal_rows_set_aside"); n != 0 {
		t.Fatalf("okp_tee_journal_rows_set_aside = %v after the restore, want 0", n)
	}
	if n := e.metric(t, "okp_tee_txn_undecidable"); n != 0 {
		t.Fatalf("okp_tee_txn_undecidable = %v, want 0 (the marker decided it)", n)
	}
	running.Close()
	startOnJournal(t, e, dir, sinks, nil)
	time.Sleep(300 * time.Millisecond)
	checkTableIDsOnce(t, e, "after another start: still 40..42 once each", 40, 41, 42)
}
