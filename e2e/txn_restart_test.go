package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// TestConfluentTransactionOpenAcrossRestart gives guarantee 4's refusal to librdkafka (Debian's
// python3-confluent-kafka): a transaction produced through one proxy process is committed
// through the next, on the same addresses. The commit must fail as abortable (not fatal), the
// abort must succeed, and the producer's next transaction must commit; the table and a
// read-committed consumer then hold the second transaction's records only.
func TestConfluentTransactionOpenAcrossRestart(t *testing.T) {
	requirePython(t, "confluent_kafka", "python3-confluent-kafka")
	const topic = "rdk-txn"
	e := newTeeEnv(t, teeOptions{
		topics:    []string{topic},
		sinksYAML: "  - topics: [" + topic + "]\n",
		tables:    []openmldb.TableSpec{seedTable(topic)},
	})
	dir := t.TempDir()
	var first, second []string
	for i := 0; i < 3; i++ {
		first = append(first, seedWithID(t, i))
		second = append(second, seedWithID(t, 100+i))
	}
	for name, values := range map[string][]string{"first": first, "second": second} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(values, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ready := filepath.Join(dir, "ready")
	goAhead, release := io.Pipe()
	defer release.Close()
	type outcome struct {
		res harness.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := harness.Run(context.Background(), 150*time.Second, goAhead, nil, debianPython, "testdata/confluent_txn_restart.py",
			"--bootstrap", e.bootstrap, "--topic", topic, "--txn-id", "rdk-restart",
			"--first", filepath.Join(dir, "first"), "--second", filepath.Join(dir, "second"), "--ready", ready)
		done <- outcome{res, err}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case o := <-done:
			t.Fatalf("the script ended before its first transaction was produced: %v\n%s", o.err, o.res.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the first transaction was not produced within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The restart: same addresses, same configuration, a new process.
	if err := e.proxy.Stop(10 * time.Second); err != nil {
		t.Fatalf("stop the first proxy: %v", err)
	}
	e.secondProxy(t, testContext(t, 30*time.Second), e.proxy.BasePort)
	// Closed after the line: exec's stdin copy ends only at EOF, and Wait waits for it.
	if _, err := io.WriteString(release, "commit\n"); err != nil {
		t.Fatal(err)
	}
	release.Close()
	o := <-done
	if o.err != nil {
		t.Fatalf("script: %v\n%s", o.err, o.res.Stderr)
	}
	var got struct {
		Commit struct {
			OK            bool   `json:"ok"`
			Code          string `json:"code"`
			RequiresAbort bool   `json:"requires_abort"`
			Fatal         bool   `json:"fatal"`
			Message       string `json:"message"`
		} `json:"commit"`
		Abort        string `json:"abort"`
		SecondCommit string `json:"second_commit"`
	}
	if err := json.Unmarshal([]byte(o.res.Stdout), &got); err != nil {
		t.Fatalf("script output %q: %v (stderr %s)", o.res.Stdout, err, o.res.Stderr)
	}
	c := got.Commit
	if c.OK || c.Code != "UNKNOWN_PRODUCER_ID" || !c.RequiresAbort || c.Fatal {
		t.Fatalf("commit across the restart: %+v; want UNKNOWN_PRODUCER_ID, abortable, not fatal", c)
	}
	if got.Abort != "ok" || got.SecondCommit != "ok" {
		t.Fatalf("after the refused commit: abort %q, next transaction's commit %q; want both ok", got.Abort, got.SecondCommit)
	}
	checkSame(t, "read-committed consumer", second, e.kgoConsume(t, "rdk-txn-reader", topic, len(second), nil,
		kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	ids := scannedIDs(t, e.scan(t, topic))
	if len(ids) != len(second) {
		t.Fatalf("table ids %v, want the second transaction's 100..102 only", ids)
	}
	for _, id := range ids {
		if id < 100 {
			t.Fatalf("table ids %v: a row of the refused transaction was stored", ids)
		}
	}
}
