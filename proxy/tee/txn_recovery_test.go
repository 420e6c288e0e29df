package tee_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// README, guarantee 4: "A failed journal write (disk full) is logged and retried at every retry
// round, and until one succeeds the shutdown drain waits for the rows as without a journal."
// Without a journal the drain keeps retrying the rows (every 200 ms) while it waits. With a
// journal whose last write failed, the retry goroutines stop at the drain's start instead, so
// nothing writes the rows any more: OpenMLDB recovering during the drain does not help, the drain
// times out, and Close cannot journal them either (the disk is still full): committed rows lost.
func TestDrainWithAFailedJournalWriteStillRetriesCommittedRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, dir, _ := startJournalEnv(t, ctx)
	tee.SetCommitTimeout(e.tee, 300*time.Millisecond)

	// T1: Kafka commits, OpenMLDB refuses: the proxy owes 3 rows and retries them itself.
	commitWithPutsRefused(t, ctx, e, dir, "dirty-journal", 10, 3)

	// The journal can no longer be written (a full disk, here a directory in the file's way):
	// T2's commit is refused before it is forwarded, and the journal is now dirty.
	if err := os.Remove(filepath.Join(dir, "committed-rows.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "committed-rows.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	cl2 := e.client(t, kgo.TransactionalID("dirty-journal-2"), kgo.RequestRetries(1))
	produceInTxn(t, ctx, cl2, 20, 1)
	if err := cl2.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.CoordinatorLoadInProgress) {
		t.Fatalf("commit with the journal unwritable: %v, want COORDINATOR_LOAD_IN_PROGRESS", err)
	}
	_ = cl2.EndTransaction(ctx, kgo.TryAbort)

	// Shutdown begins while OpenMLDB still refuses; it recovers a moment later, well within the
	// drain's time.
	drained := make(chan error, 1)
	dctx, dcancel := context.WithTimeout(ctx, 8*time.Second)
	defer dcancel()
	go func() { drained <- e.tee.Drain(dctx) }()
	time.Sleep(1500 * time.Millisecond)
	e.cluster.FailPuts(0, 0)
	if err := <-drained; err != nil {
		t.Fatalf("drain with the journal unwritable and OpenMLDB back: %v; want the 3 committed rows written meanwhile", err)
	}
	checkTableIDsOnce(t, e, "want 0 and the committed 10..12", 0, 10, 11, 12)
}

// README, "The journal command": an operator settles a pending transaction when the proxy
// "logs `cannot read the outcome of transactions` (its partition cannot be read at all, e.g. no
// READ on the topic)", and okp_tee_txn_undecidable is the alert. When the broker refuses the
// marker reader's fetches (TOPIC_AUTHORIZATION_FAILED, as for a missing READ ACL), the reader
// only logs and polls again for ever: it never gives up on the transaction, so the metric stays
// 0 and the running proxy refuses the operator's settlement ("still being read"). The rows stay
// held (counted as open rows against limits.max_held_transaction_rows) until the proxy is
// stopped.
func TestMarkerReaderWithoutReadAccessLetsTheOperatorSettle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, dir, _ := startJournalEnv(t, ctx)
	loseCommitAnswer(t, ctx, e, dir, "no-read", 10, 2)

	// From now on the broker refuses every fetch of topic1 as not authorized.
	e.kafka.ControlKey(int16(kmsg.Fetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		req := r.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	// A new producer with the same transactional id, through the proxy, fences the one whose
	// commit answer never came: its rows go to the marker reader, which cannot read topic1.
	newRawTxn(t, ctx, e.client(t), "no-read")

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, err := tee.DecidePending(dir, tee.SelectPending("no-read"), false)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker reader cannot read topic1 (no READ), yet after 20 s okp_tee_txn_undecidable = %v and the operator's abort is refused: %v",
				e.metric(t, "okp_tee_txn_undecidable"), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if held := e.metricWith(t, "okp_tee_txn_rows_held", "state", "open"); held != 0 {
		t.Fatalf("%v rows still held after the operator aborted the transaction", held)
	}
}
