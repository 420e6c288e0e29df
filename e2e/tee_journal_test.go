package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// A transaction commits in Kafka while OpenMLDB refuses its rows; the proxy journals them as soon
// as Kafka has committed and is killed (SIGKILL: no drain, no Close) while it is still retrying
// the commit's writes. A new proxy process on the same journal directory writes them once
// OpenMLDB takes rows again: every committed row is stored, once.
func TestJournalSurvivesProxyKill(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal")
	e := newTeeEnv(t, teeOptions{
		topics:    []string{"jtxn"},
		sinksYAML: "  - topics: [jtxn]\n",
		tables:    []openmldb.TableSpec{seedTable("jtxn")},
		extraArgs: []string{"--openmldb.journal_dir", journal},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := e.kgoClient(t, "journal", kgo.TransactionalID("journal-e2e"), kgo.DefaultProduceTopic("jtxn"))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(seedWithID(t, i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	e.om.FailPuts(1<<30, 999)
	// The proxy retries the commit's rows for 8 s before it answers; it dies within them.
	ended := make(chan error, 1)
	go func() { ended <- cl.EndTransaction(ctx, kgo.TryCommit) }()
	deadline := time.Now().Add(6 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(journal, "committed-rows.json")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no journal while the commit's rows are being retried")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.proxy.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("EndTxn succeeded although OpenMLDB refused every row")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("EndTxn did not return after the proxy died")
	}
	if ids := scannedIDs(t, e.scan(t, "jtxn")); len(ids) != 0 {
		t.Fatalf("rows stored while OpenMLDB refused: %v", ids)
	}
	// The journal command, run as an operator would, sees the 4 rows (owed, or pending if the
	// kill came before the commit's answer), and no proxy running (the killed one's socket is
	// left behind, with nobody listening).
	show := func() string {
		res, err := harness.Run(ctx, 30*time.Second, nil, nil, suite.bin, "journal", "show", journal)
		if err != nil {
			t.Fatalf("journal show: %v\n%s", err, res.Stderr)
		}
		return res.Stdout
	}
	if out := show(); !(strings.Contains(out, "owed to OpenMLDB (committed in Kafka, not stored yet): 4 rows") ||
		strings.Contains(out, `transactional id "journal-e2e"`) && strings.Contains(out, "kafka_test.jtxn: 4 rows")) || strings.Contains(out, "proxy is running") {
		t.Fatalf("journal show after the kill:\n%s", out)
	}

	e.om.FailPuts(0, 0)
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	e.secondProxy(t, sctx, 0, "--openmldb.journal_dir", journal)
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(journal, "committed-rows.json")); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted proxy did not write the journaled rows")
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkIDs(t, "table after the restart", scannedIDs(t, e.scan(t, "jtxn")), 4)
	if out := show(); !strings.Contains(out, "no rows owed, pending or set aside") || !strings.Contains(out, "a proxy is running on it") {
		t.Fatalf("journal show with the new proxy running:\n%s", out)
	}
}
