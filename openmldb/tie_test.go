package openmldb_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// The tie tests run against tablets that apply the Puts of one socket read concurrently, as
// brpc does (openmldbtest.Options.ConcurrentReads): rows of one key on an index without a TS
// column must still read newest = last written, which only their Put times can guarantee.

// checkNewestLast scans key on index 0 and fails unless its n rows read newest first in
// reverse id order (ids are the write order).
func checkNewestLast(t *testing.T, ctx context.Context, c *openmldb.Client, tb *openmldb.Table, key string, n int) {
	t.Helper()
	checkNewestLastOn(t, ctx, c, tb, 0, key, n)
}

// checkNewestLastOn is checkNewestLast on index idx.
func checkNewestLastOn(t *testing.T, ctx context.Context, c *openmldb.Client, tb *openmldb.Table, idx int, key string, n int) {
	t.Helper()
	rows, err := c.Scan(ctx, tb, idx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("key %s: scan read %d rows, want %d", key, len(rows), n)
	}
	for i, r := range rows {
		if r[0].I != int64(n-1-i) {
			t.Fatalf("key %s: row %d of the scan (newest first) has id %d, want %d: rows of one key were stored out of write order",
				key, i, r[0].I, n-1-i)
		}
	}
}

// writeBackToBack issues one WriteAsync per batch without waiting between them (the proxy
// pipelines Produce requests so) and waits for all; any row's error fails the test.
func writeBackToBack(t *testing.T, ctx context.Context, c *openmldb.Client, tb *openmldb.Table, batches ...[]openmldb.Row) {
	t.Helper()
	var wg sync.WaitGroup
	for w, rows := range batches {
		wg.Add(1)
		c.WriteAsync(ctx, tb, rows, openmldb.WriteOptions{}, func(errs []error) {
			defer wg.Done()
			for i, err := range errs {
				if err != nil {
					t.Errorf("write %d row %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// tieTable creates tie.t with one index on c2 and no TS column, one partition.
func tieTable(t *testing.T, ctx context.Context, c *openmldb.Client) *openmldb.Table {
	t.Helper()
	if err := c.CreateDatabase(ctx, "tie", true); err != nil {
		t.Fatal(err)
	}
	tb, err := c.CreateTable(ctx, openmldb.TableSpec{DB: "tie", Name: "t", Columns: testColumns,
		Indexes: []openmldb.Index{{Keys: []string{"c2"}}}, PartitionNum: 1, ReplicaNum: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// tieRows are rows from..from+n-1 (ids) that all have key in c2.
func tieRows(key, from, n int) []openmldb.Row {
	rows := make([]openmldb.Row, n)
	for i := range rows {
		rows[i] = testRow(from + i)
		rows[i][2] = openmldb.Int(int64(key))
	}
	return rows
}

// One Write of 500 rows of one key.
func TestRowsOfOneKeyInOneWriteReadNewestLast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1, ConcurrentReads: true}, 0)
	tb := tieTable(t, ctx, e.client)
	const n = 500
	for run := range 5 {
		for i, err := range e.client.Write(ctx, tb, tieRows(run, 0, n), openmldb.WriteOptions{}) {
			if err != nil {
				t.Fatalf("run %d row %d: %v", run, i, err)
			}
		}
		checkNewestLast(t, ctx, e.client, tb, strconv.Itoa(run), n)
	}
}

// Back-to-back Writes of one key (the proxy pipelines Produce requests so), 50 rows each, often
// within one millisecond.
func TestRowsOfOneKeyAcrossWritesReadNewestLast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1, ConcurrentReads: true}, 0)
	tb := tieTable(t, ctx, e.client)
	const writes, per = 10, 50
	for run := range 5 {
		var batches [][]openmldb.Row
		for w := range writes {
			batches = append(batches, tieRows(run, w*per, per))
		}
		writeBackToBack(t, ctx, e.client, tb, batches...)
		checkNewestLast(t, ctx, e.client, tb, strconv.Itoa(run), writes*per)
	}
}

// Rows of one key with an equal event time on an index with a TS column: the timestamp is the
// record's, so no stamp can order them; the client holds each such Put until the one before it
// is answered.

// eventTieTable creates tie.<name> with the given indexes over testColumns.
func eventTieTable(t *testing.T, ctx context.Context, c *openmldb.Client, name string, partitions uint32, indexes ...openmldb.Index) *openmldb.Table {
	t.Helper()
	if err := c.CreateDatabase(ctx, "tie", true); err != nil {
		t.Fatal(err)
	}
	tb, err := c.CreateTable(ctx, openmldb.TableSpec{DB: "tie", Name: name, Columns: testColumns,
		Indexes: indexes, PartitionNum: partitions, ReplicaNum: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// startEventTies starts one tablet that applies a socket read's Puts concurrently, as brpc
// does, and creates tie.ev with one partition and an index on c2 with TS column ts.
func startEventTies(t *testing.T) (context.Context, *env, *openmldb.Table) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1, ConcurrentReads: true}, 0)
	return ctx, e, eventTieTable(t, ctx, e.client, "ev", 1, openmldb.Index{Keys: []string{"c2"}, TS: "ts"})
}

// eventTieRows are tieRows that all have event time ts (column "ts").
func eventTieRows(key, from, n int, ts int64) []openmldb.Row {
	rows := tieRows(key, from, n)
	for _, r := range rows {
		r[8] = openmldb.Int(ts)
	}
	return rows
}

func checkWritten(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
}

// One Write of 300 rows of one key and one event time.
func TestRowsOfOneKeyAndEventTimeInOneWriteReadNewestLast(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	const n = 300
	for run := range 3 {
		before := e.client.TieWaits()
		checkWritten(t, e.client.Write(ctx, tb, eventTieRows(run, 0, n, 1700000000000), openmldb.WriteOptions{}))
		checkNewestLast(t, ctx, e.client, tb, strconv.Itoa(run), n)
		if waits := e.client.TieWaits() - before; waits != n-1 {
			t.Fatalf("run %d: %d Puts waited for a tie, want %d (every row but the first)", run, waits, n-1)
		}
	}
}

// Back-to-back Writes of one key and one event time.
func TestRowsOfOneKeyAndEventTimeAcrossWritesReadNewestLast(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	const writes, per = 10, 30
	for run := range 3 {
		var batches [][]openmldb.Row
		for w := range writes {
			batches = append(batches, eventTieRows(run, w*per, per, 1700000000000))
		}
		writeBackToBack(t, ctx, e.client, tb, batches...)
		checkNewestLast(t, ctx, e.client, tb, strconv.Itoa(run), writes*per)
	}
}

// AnyTieOrder sends tying Puts at once: all rows are stored and none waited.
func TestAnyTieOrderDoesNotWait(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	const n = 300
	checkWritten(t, e.client.Write(ctx, tb, eventTieRows(0, 0, n, 1700000000000), openmldb.WriteOptions{AnyTieOrder: true}))
	if c, err := e.cluster.Count("tie", "ev"); err != nil || c != n {
		t.Fatalf("table holds %d rows (%v), want %d", c, err, n)
	}
	if waits := e.client.TieWaits(); waits != 0 {
		t.Fatalf("%d Puts waited with AnyTieOrder, want 0", waits)
	}
}

// Distinct event times order themselves: nothing waits, even for one key.
func TestRowsOfOneKeyWithDistinctEventTimesDoNotWait(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	rows := tieRows(0, 0, 500) // testRow's event times differ
	checkWritten(t, e.client.Write(ctx, tb, rows, openmldb.WriteOptions{}))
	checkNewestLast(t, ctx, e.client, tb, "0", len(rows))
	if waits := e.client.TieWaits(); waits != 0 {
		t.Fatalf("%d Puts waited, want 0: only equal event times tie", waits)
	}
}

// Two indexes with TS columns whose keys cross (a row ties with different rows on each): each
// key still reads newest = last written, on one partition (one Put carries both keys) and on
// several (a row's keys in different Puts).
func TestCrossingTiesOnTwoIndexesKeepEachKeysOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 2, ConcurrentReads: true}, 0)
	for _, partitions := range []uint32{1, 4} {
		tb := eventTieTable(t, ctx, e.client, "cross"+strconv.Itoa(int(partitions)), partitions,
			openmldb.Index{Keys: []string{"c2"}, TS: "ts"}, openmldb.Index{Keys: []string{"c1"}, TS: "ts"})
		const n = 240
		rows := eventTieRows(0, 0, n, 1700000000000)
		for i, r := range rows {
			r[2] = openmldb.Int(int64(i % 3))
			r[1] = openmldb.Int(int64(i % 5))
		}
		writeBackToBack(t, ctx, e.client, tb, rows[:60], rows[60:120], rows[120:180], rows[180:])
		for idx, mod := range []int{3, 5} {
			col := []int{2, 1}[idx]
			for k := range mod {
				scanned, err := e.client.Scan(ctx, tb, idx, strconv.Itoa(k), 0)
				if err != nil {
					t.Fatal(err)
				}
				var want []int64 // ids of key k, newest (last written) first
				for i := n - 1; i >= 0; i-- {
					if rows[i][col].I == int64(k) {
						want = append(want, int64(i))
					}
				}
				if len(scanned) != len(want) {
					t.Fatalf("%d partitions, index %d key %d: %d rows, want %d", partitions, idx, k, len(scanned), len(want))
				}
				for i, r := range scanned {
					if r[0].I != want[i] {
						t.Fatalf("%d partitions, index %d key %d: row %d of the scan has id %d, want %d", partitions, idx, k, i, r[0].I, want[i])
					}
				}
			}
		}
	}
}

// A Put that fails does not strand the rows waiting behind it: they are written, and the failed
// row is reported (a data error) or retried (a follower answer).
func TestTiedPutsBehindAFailedPutAreWritten(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	const n = 50
	e.cluster.FailPuts(3, openmldb.CodeTableIsFollower) // retried
	checkWritten(t, e.client.Write(ctx, tb, eventTieRows(0, 0, n, 1700000000000), openmldb.WriteOptions{}))
	if c, err := e.cluster.Count("tie", "ev"); err != nil || c != n {
		t.Fatalf("table holds %d rows (%v), want %d", c, err, n)
	}
	e.cluster.FailPuts(2, openmldb.CodePutFailed) // reported
	errs := e.client.Write(ctx, tb, eventTieRows(1, n, n, 1700000000000), openmldb.WriteOptions{})
	failed := 0
	for _, err := range errs {
		var se *openmldb.ServerError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.Code == openmldb.CodePutFailed:
			failed++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if failed != 2 {
		t.Fatalf("%d rows failed, want the 2 whose Puts were refused", failed)
	}
	if c, err := e.cluster.Count("tie", "ev"); err != nil || c != 2*n-2 {
		t.Fatalf("table holds %d rows (%v), want %d", c, err, 2*n-2)
	}
}

// A Put waiting for a tie whose Write gives up meanwhile is never sent: its row is reported
// failed (once the Put it waited for is answered) and is not stored.
func TestTiedPutOfAWriteThatGaveUpIsNotSent(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	e.cluster.StallPuts(400 * time.Millisecond)
	first := make(chan []error, 1)
	e.client.WriteAsync(ctx, tb, eventTieRows(0, 0, 1, 1700000000000), openmldb.WriteOptions{}, func(errs []error) { first <- errs })
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	errs := e.client.Write(short, tb, eventTieRows(0, 1, 1, 1700000000000), openmldb.WriteOptions{})
	if !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Fatalf("the Write that gave up got %v, want its context's deadline", errs[0])
	}
	checkWritten(t, <-first)
	time.Sleep(100 * time.Millisecond) // a Put sent late would land now
	checkNewestLast(t, ctx, e.client, tb, "0", 1)
	if waits := e.client.TieWaits(); waits != 1 {
		t.Fatalf("%d Puts waited, want 1", waits)
	}
}

// A client opened right after another wrote a hot key (stamps up to a second ahead of the clock)
// stamps the key's next row above them: a proxy restarted at once lists new rows as newest.
func TestRowsOfARestartedClientReadNewest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 1}, 0)
	tb := tieTable(t, ctx, e.client)
	// The first client has run past its own first second (whose stamps start a second ahead),
	// as a proxy restarted after running a while has.
	time.Sleep(1100 * time.Millisecond)
	const n = 3000 // well past 1,000 rows a second: the key runs ahead of the clock
	checkWritten(t, e.client.Write(ctx, tb, tieRows(0, 0, n), openmldb.WriteOptions{}))
	e.client.Close()
	next, err := openmldb.Open(ctx, openmldb.Options{Nameserver: e.cluster.Nameserver(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	ntb, err := next.Table("tie", "t")
	if err != nil {
		t.Fatal(err)
	}
	checkWritten(t, next.Write(ctx, ntb, tieRows(0, n, 1), openmldb.WriteOptions{}))
	checkNewestLast(t, ctx, next, ntb, "0", n+1)
}

// A Put whose Write gave up (its deadline passed while the tablet stalled) may still be stored:
// the Put tying with it waits until its answer comes after all, so the later row still reads as
// the newer.
func TestTieWaitsForAnExpiredPutsAnswer(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	const keys = 20
	e.cluster.StallPuts(time.Second)
	firsts, seconds := make([]chan []error, keys), make([]chan []error, keys)
	for k := range keys {
		short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancelShort()
		firsts[k], seconds[k] = make(chan []error, 1), make(chan []error, 1)
		e.client.WriteAsync(short, tb, eventTieRows(k, 0, 1, 1700000000000), openmldb.WriteOptions{}, func(errs []error) { firsts[k] <- errs })
		e.client.WriteAsync(ctx, tb, eventTieRows(k, 1, 1, 1700000000000), openmldb.WriteOptions{}, func(errs []error) { seconds[k] <- errs })
	}
	for k := range keys {
		if errs := <-firsts[k]; !errors.Is(errs[0], openmldb.ErrCallTimeout) && !errors.Is(errs[0], context.DeadlineExceeded) {
			t.Fatalf("key %d: the Write that gave up got %v, want a timeout", k, errs[0])
		}
		checkWritten(t, <-seconds[k])
	}
	for k := range keys {
		rows, err := e.client.Scan(ctx, tb, 0, strconv.Itoa(k), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0][0].I != 1 {
			t.Fatalf("key %d: %d rows, the newest id %d; want both, id 1 (the later Write) newest", k, len(rows), rows[0][0].I)
		}
	}
}

// A Put answered while a Write's round is between entering the gate and issuing can wake that
// Write's waiting op at once; the round still completes.
func TestTieWokenBeforeItsRoundIssuedCompletes(t *testing.T) {
	ctx, e, tb := startEventTies(t)
	first := make(chan []error, 1)
	e.client.WriteAsync(ctx, tb, eventTieRows(0, 0, 1, 1700000000000), openmldb.WriteOptions{}, func(errs []error) { first <- errs })
	openmldb.SetAfterTieEnter(e.client, func() { time.Sleep(50 * time.Millisecond) }) // the first Put is answered meanwhile
	second := make(chan []error, 1)
	e.client.WriteAsync(ctx, tb, eventTieRows(0, 1, 1, 1700000000000), openmldb.WriteOptions{}, func(errs []error) { second <- errs })
	checkWritten(t, <-first)
	select {
	case errs := <-second:
		checkWritten(t, errs)
	case <-time.After(20 * time.Second):
		t.Fatal("the second Write never completed")
	}
	checkNewestLast(t, ctx, e.client, tb, "0", 2)
}
