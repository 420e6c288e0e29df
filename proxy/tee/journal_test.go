package tee_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
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
	ids := map[int64]int{}
	for _, r := range e.tableRows(t, "topic1") {
		ids[r[2].I]++
	}
	for _, id := range []int64{0, 10, 11, 12, 13} {
		if ids[id] != 1 {
			t.Fatalf("row %d stored %d times (ids %v)", id, ids[id], ids)
		}
	}
	if len(ids) != 5 {
		t.Fatalf("table ids %v, want 0 and 10..13", ids)
	}
	next.Close()

	if err := os.WriteFile(filepath.Join(dir, "committed-rows.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tee.New(tee.Options{Sinks: sinks, Database: "kafka_test", Store: e.store, JournalDir: dir}); err == nil ||
		!strings.Contains(err.Error(), "committed-rows.json") {
		t.Fatalf("start with an unreadable journal: %v", err)
	}
}
