package tee_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// Retention took the batches of two transactions whose commit answer the proxy never saw, so the
// log cannot tell how they ended and the proxy keeps them undecided. The operator, who learned
// the outcomes elsewhere, settles them with the journal command's functions: refused while a
// proxy holds the directory, refused for a transaction the journal does not have, and then the
// next start writes the committed one's rows once and none of the aborted one's.
func TestOperatorSettlesTransactionsTheLogCannotDecide(t *testing.T) {
	dir := t.TempDir()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, sinks, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err) // creates the table
	}
	// Both commits are answered with an error and never processed; the clients go away, so
	// both stay pending, and the journal keeps them at close.
	for _, tx := range []struct {
		id       string
		first, n int
	}{{"op-commit", 10, 3}, {"op-abort", 20, 2}} {
		cl := e.client(t, kgo.TransactionalID(tx.id))
		_, ended, release := commitInFlight(t, ctx, e, cl, dir, tx.first, tx.n, kerr.NotCoordinator.Code)
		cl.Close()
		release()
		<-ended
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	_ = e.tee.Drain(short)
	e.tee.Close()

	c, err := tee.ReadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Journal == nil || len(c.Journal.Pending) != 2 || c.Journal.Version != 2 || len(c.Journal.Owed) != 0 || len(c.SetAside) != 0 {
		t.Fatalf("journal read back: %+v; want version 2 with the two pending transactions", c)
	}
	for i, want := range []struct {
		id   string
		rows int
	}{{"op-commit", 3}, {"op-abort", 2}} {
		p := c.Journal.Pending[i]
		if p.TransactionalID != want.id || tee.JournalRows(p.Groups) != want.rows || p.Topic != "topic1" || p.Groups[0].Table != "topic1" {
			t.Fatalf("pending %d: %+v, want %s with %d rows of kafka_test.topic1", i, p, want.id, want.rows)
		}
	}

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

	// A start reads the log, cannot tell, and keeps both pending; the directory is its own.
	undecided, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir,
		KafkaBootstrap: e.kafka.ListenAddrs(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "out of range (retention); its rows stay undecided") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not report both transactions undecided; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-commit", ProducerID: -1, Epoch: -1}, true); !errors.Is(err, tee.ErrJournalInUse) {
		t.Fatalf("deciding while a proxy uses the journal: %v, want ErrJournalInUse", err)
	}
	undecided.Close()
	if c, err := tee.ReadJournal(dir); err != nil || c.Journal == nil || len(c.Journal.Pending) != 2 {
		t.Fatalf("journal after the undecided start: %+v %v; want both still pending", c, err)
	}

	if _, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-elsewhere", ProducerID: -1, Epoch: -1}, true); err == nil ||
		!strings.Contains(err.Error(), `"op-commit" (producer id`) || !strings.Contains(err.Error(), `"op-abort" (producer id`) {
		t.Fatalf("deciding a transaction the journal does not have: %v; want an error listing the pending ones", err)
	}
	pid := c.Journal.Pending[0].ProducerID
	if _, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-commit", ProducerID: pid + 1000, Epoch: -1}, true); err == nil {
		t.Fatal("deciding with another producer id succeeded")
	}
	tx, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-commit", ProducerID: pid, Epoch: -1}, true)
	if err != nil || tx.TransactionalID != "op-commit" || tee.JournalRows(tx.Groups) != 3 {
		t.Fatalf("commit op-commit: %+v %v", tx, err)
	}
	if c, err := tee.ReadJournal(dir); err != nil || c.Journal == nil || len(c.Journal.Pending) != 1 || tee.JournalRows(c.Journal.Owed) != 3 {
		t.Fatalf("journal after committing one: %+v %v; want its 3 rows owed and one pending", c, err)
	}
	if _, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-abort", ProducerID: -1, Epoch: -1}, false); err != nil {
		t.Fatal(err)
	}
	c, err = tee.ReadJournal(dir)
	if err != nil || c.Journal == nil || len(c.Journal.Pending) != 0 || tee.JournalRows(c.Journal.Owed) != 3 || c.Journal.Version != 1 {
		t.Fatalf("journal after settling both: %+v %v; want version 1 (nothing pending) with 3 rows owed", c, err)
	}
	if _, err := tee.DecidePending(dir, tee.PendingSelector{TransactionalID: "op-abort", ProducerID: -1, Epoch: -1}, false); err == nil ||
		!strings.Contains(err.Error(), "no transaction is pending") {
		t.Fatalf("deciding again: %v", err)
	}

	next, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir,
		KafkaBootstrap: e.kafka.ListenAddrs(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	waitJournalGone(t, dir)
	checkTableIDsOnce(t, e, "want 0 and the committed 10..12; never the aborted 20, 21", 0, 10, 11, 12)
}

// Rows owed to a table that was dropped are set aside at the next start; once the table is
// recreated with the same columns, restoring the file puts them back in the journal (the file
// goes), and the start after that writes them once.
func TestOperatorRestoresSetAsideRows(t *testing.T) {
	dir := t.TempDir()
	sinks := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	e := startEnvWith(t, func(o *tee.Options) { o.JournalDir = dir }, sinks, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.client(t).ProduceSync(ctx, &kgo.Record{Topic: "topic1", Value: []byte(seedRow(0))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl := e.client(t, kgo.TransactionalID("restore-app"))
	produceInTxn(t, ctx, cl, 10, 3)
	e.cluster.FailPuts(1<<30, 999)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("EndTxn with OpenMLDB refusing: %v, want REQUEST_TIMED_OUT", err)
	}
	_ = cl.EndTransaction(ctx, kgo.TryAbort)
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	_ = e.tee.Drain(short)
	e.tee.Close()
	e.cluster.FailPuts(0, 0)

	tb, err := e.store.Table("kafka_test", "topic1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DropTable(ctx, "kafka_test", "topic1"); err != nil {
		t.Fatal(err)
	}
	start := func() *tee.Tee {
		tt, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir, KafkaBootstrap: e.kafka.ListenAddrs()})
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	aside := start()
	c, err := tee.ReadJournal(dir)
	if err != nil || c.Journal != nil || len(c.SetAside) != 1 || tee.JournalRows(c.SetAside[0].Owed) != 3 || c.SetAside[0].Owed[0].Table != "topic1" {
		t.Fatalf("after a start without the table: %+v %v; want the 3 rows in one set-aside file", c, err)
	}
	file := c.SetAside[0].Path
	if _, err := tee.RestoreSetAside(dir, file); !errors.Is(err, tee.ErrJournalInUse) {
		t.Fatalf("restore while a proxy uses the journal: %v, want ErrJournalInUse", err)
	}
	aside.Close()
	if _, err := tee.RestoreSetAside(dir, filepath.Join(dir, "committed-rows.json")); err == nil {
		t.Fatal("restoring the journal itself succeeded")
	}

	if _, err := e.store.CreateTable(ctx, openmldb.TableSpec{DB: "kafka_test", Name: "topic1", Columns: tb.Columns}); err != nil {
		t.Fatal(err)
	}
	f, err := tee.RestoreSetAside(dir, filepath.Base(file))
	if err != nil || tee.JournalRows(f.Owed) != 3 {
		t.Fatalf("restore: %+v %v", f, err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the set-aside file is still there after the restore: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "committed-rows.json"))
	var doc struct {
		Version int `json:"version"`
	}
	if err != nil || json.Unmarshal(b, &doc) != nil || doc.Version != 1 || journalRows(t, dir) != 3 {
		t.Fatalf("journal after the restore: %s %v; want version 1 with the 3 rows", b, err)
	}
	next := start()
	defer next.Close()
	waitJournalGone(t, dir)
	checkTableIDsOnce(t, e, "want 10..12 (row 0 went with the dropped table)", 10, 11, 12)
}
