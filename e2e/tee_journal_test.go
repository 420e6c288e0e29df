package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// A transaction commits in Kafka while OpenMLDB refuses its rows; the proxy takes them over,
// journals them and is then killed (SIGKILL: no drain, no Close). A new proxy process on the same
// journal directory writes them once OpenMLDB takes rows again: every committed row is stored,
// once.
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
	// The proxy retries the commit's rows for 8 s, then answers REQUEST_TIMED_OUT.
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("EndTxn with OpenMLDB refusing: %v, want REQUEST_TIMED_OUT", err)
	}
	if _, err := os.Stat(filepath.Join(journal, "committed-rows.json")); err != nil {
		t.Fatalf("journal after the commit: %v", err)
	}

	if err := e.proxy.Kill(); err != nil {
		t.Fatal(err)
	}
	if ids := scannedIDs(t, e.scan(t, "jtxn")); len(ids) != 0 {
		t.Fatalf("rows stored while OpenMLDB refused: %v", ids)
	}

	e.om.FailPuts(0, 0)
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	next, err := harness.StartProxy(sctx, harness.ProxyOptions{Bin: suite.bin, Upstream: e.kafka.ListenAddrs(), Brokers: numBrokers,
		ExtraArgs: []string{"--config", filepath.Join(e.dir, "proxy.yaml"), "--openmldb.journal_dir", journal}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := next.Stop(5 * time.Second); err != nil {
			t.Errorf("stop second proxy: %v", err)
		}
		if t.Failed() {
			t.Logf("second proxy log:\n%s", tailLines(next.Logs(), 40))
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
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
}
