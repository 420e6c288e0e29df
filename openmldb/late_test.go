package openmldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// startShortTimeout starts one tablet with the table tie.t and opens a second client on it with
// the given RPC timeout; it returns that client and its view of the table.
func startShortTimeout(t *testing.T, timeout time.Duration) (context.Context, *env, *openmldb.Client, *openmldb.Table) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	tieTable(t, ctx, e.client)
	c, err := openmldb.Open(ctx, openmldb.Options{Nameserver: e.cluster.Nameserver(), Logger: quiet, RPCTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tb, err := c.Table("tie", "t")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, e, c, tb
}

// A Put that outlives the client's RPC timeout is decided by its answer after all, not sent
// again while the first may still be applied (that stored the row twice): stored once, reported
// stored. An answer that refuses it (a follower) is retried as usual.
func TestTimedOutPutIsDecidedByItsLateAnswer(t *testing.T) {
	ctx, e, c, tb := startShortTimeout(t, 300*time.Millisecond)
	e.cluster.StallPuts(500 * time.Millisecond) // answered after the timeout, before a second one
	checkWritten(t, c.Write(ctx, tb, tieRows(0, 0, 1), openmldb.WriteOptions{}))
	if n, err := e.cluster.Count("tie", "t"); err != nil || n != 1 {
		t.Fatalf("table holds %d rows (%v), want the one row once", n, err)
	}
	e.cluster.StallPuts(500 * time.Millisecond)
	e.cluster.FailPuts(1, openmldb.CodeTableIsFollower) // the late answer: retry elsewhere
	checkWritten(t, c.Write(ctx, tb, tieRows(1, 1, 1), openmldb.WriteOptions{}))
	if n, err := e.cluster.Count("tie", "t"); err != nil || n != 2 {
		t.Fatalf("table holds %d rows (%v), want 2", n, err)
	}
}

// A Put whose answer never comes is sent again one RPC timeout after it expired (bounded, as
// before this wait), and a Write whose context ends meanwhile reports at once.
func TestTimedOutPutWithoutALateAnswerIsBounded(t *testing.T) {
	ctx, e, c, tb := startShortTimeout(t, 200*time.Millisecond)
	e.cluster.StallPuts(time.Minute)
	short, cancelShort := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	errs := c.Write(short, tb, tieRows(0, 0, 1), openmldb.WriteOptions{})
	if errs[0] == nil {
		t.Fatal("a Put held by a stalled tablet reported stored")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the Write reported after %v, long after its context ended", took)
	}
	e.cluster.StallPuts(0)
}

// A Write is done only once its Puts gave back their in-flight slots: a Write issued from its
// done must find them free.
func TestWriteIsDoneAfterItsPutsGaveBackTheirSlots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 1)
	tb := tieTable(t, ctx, e.client)
	got := make(chan int, 1)
	e.client.WriteAsync(ctx, tb, tieRows(0, 0, 1), openmldb.WriteOptions{}, func([]error) {
		got <- openmldb.InFlightUsed(e.client)
	})
	if n := <-got; n != 0 {
		t.Fatalf("done ran with %d in-flight slots still taken by its own Put", n)
	}
}

// A tablet that keeps the connection open but never answers does not make expired Puts wait for
// their answer for as long as the connection lives: each is given up two RPC timeouts after it
// expired (before, each held its Write's attempt arena until the connection ended).
func TestExpiredPutsAreNotWaitedForForever(t *testing.T) {
	ctx, e, c, tb := startShortTimeout(t, 200*time.Millisecond)
	e.cluster.StallPuts(time.Minute)
	defer e.cluster.StallPuts(0)
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if errs := c.Write(short, tb, tieRows(0, 0, 4), openmldb.WriteOptions{}); errs[0] == nil {
		t.Fatal("a Put held by a stalled tablet reported stored")
	}
	if n := openmldb.LateCalls(c); n == 0 {
		t.Fatal("no expired Put waits for its answer right after the Write; the test sees nothing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for openmldb.LateCalls(c) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d expired Puts still wait for an answer 5 s after their Write gave up (RPC timeout 200 ms)", openmldb.LateCalls(c))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
