package openmldb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// splitRow is a testRow whose two index keys (id, and s) hash to different partitions of an
// n-partition table, so that it is written by two Puts; it returns the row and both keys.
func splitRow(t *testing.T, n int) (openmldb.Row, string, string) {
	t.Helper()
	for i := 2; i < 1000; i++ {
		r := testRow(i)
		if !r[6].Valid || r[6].S == "" || len(r[6].S) > 100 {
			continue
		}
		id, s := fmt.Sprint(i), r[6].S
		if openmldb.PartitionOf(id, n) != openmldb.PartitionOf(s, n) {
			return r, id, s
		}
	}
	t.Fatal("no row splits across partitions")
	return nil, "", ""
}

// countKey counts the rows stored under key in index idx.
func countKey(t *testing.T, ctx context.Context, c *openmldb.Client, tb *openmldb.Table, idx int, key string) uint64 {
	t.Helper()
	n, err := c.Count(ctx, tb, idx, key)
	if err != nil {
		t.Fatalf("count index %d key %q: %v", idx, key, err)
	}
	return n
}

// A row whose Put to one partition failed while another stored it is reported with the
// partition that holds it, and a retry naming that partition writes only the missing one.
func TestRetryOfAPartialWriteStoresEachPartitionOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 2}, 0) // standalone has one partition
	const parts = 8
	tb := createTestTable(t, ctx, e.client, "db", "partial", parts, 1)
	row, id, s := splitRow(t, parts)
	idPid, sPid := openmldb.PartitionOf(id, parts), openmldb.PartitionOf(s, parts)
	t.Logf("key %q in partition %d (index 0), key %q in partition %d (index 1)", id, idPid, s, sPid)

	// One of the row's two Puts (whichever reaches its tablet first) fails with a data error,
	// which is not retried; the other stores the row.
	e.cluster.FailPuts(1, openmldb.CodePutFailed)
	errs := e.client.Write(ctx, tb, []openmldb.Row{row}, openmldb.WriteOptions{})
	var pw *openmldb.PartialWriteError
	if !errors.As(errs[0], &pw) || !errors.Is(errs[0], openmldb.ErrPartialWrite) {
		t.Fatalf("write: %v, want a partial write", errs[0])
	}
	var se *openmldb.ServerError
	if !errors.As(errs[0], &se) || se.Code != openmldb.CodePutFailed {
		t.Fatalf("write: %v, want the failed Put's code %d in the chain", errs[0], openmldb.CodePutFailed)
	}
	if !slices.Equal(openmldb.StoredPartitions(errs[0]), pw.Stored) || len(pw.Stored) != 1 || (pw.Stored[0] != idPid && pw.Stored[0] != sPid) {
		t.Fatalf("stored partitions %v, want one of %d (key %q) and %d (key %q)", pw.Stored, idPid, id, sPid, s)
	}
	wantID, wantS := uint64(0), uint64(1)
	if pw.Stored[0] == idPid {
		wantID, wantS = 1, 0
	}
	if a, b := countKey(t, ctx, e.client, tb, 0, id), countKey(t, ctx, e.client, tb, 1, s); a != wantID || b != wantS {
		t.Fatalf("after the partial write index 0 holds %d rows of the key and index 1 %d, want %d and %d", a, b, wantID, wantS)
	}

	errs = e.client.Write(ctx, tb, []openmldb.Row{row}, openmldb.WriteOptions{StoredPartitions: [][]uint32{pw.Stored}})
	if errs[0] != nil {
		t.Fatalf("retry: %v", errs[0])
	}
	if a, b := countKey(t, ctx, e.client, tb, 0, id), countKey(t, ctx, e.client, tb, 1, s); a != 1 || b != 1 {
		t.Fatalf("after the retry index 0 holds %d rows of the key and index 1 %d, want 1 and 1", a, b)
	}

	// Every partition stored: nothing is sent (an injected failure stays pending) and the row
	// succeeds.
	e.cluster.FailPuts(1, openmldb.CodePutFailed)
	errs = e.client.Write(ctx, tb, []openmldb.Row{row}, openmldb.WriteOptions{StoredPartitions: [][]uint32{{idPid, sPid}}})
	if errs[0] != nil {
		t.Fatalf("write of a row stored everywhere: %v", errs[0])
	}
	other := testRow(1)
	if errs := e.client.Write(ctx, tb, []openmldb.Row{other}, openmldb.WriteOptions{}); !errors.As(errs[0], &se) {
		t.Fatalf("the injected failure was taken by a Put that should not have been sent (next write: %v)", errs[0])
	}
	if a, b := countKey(t, ctx, e.client, tb, 0, id), countKey(t, ctx, e.client, tb, 1, s); a != 1 || b != 1 {
		t.Fatalf("index 0 holds %d rows of the key and index 1 %d, want 1 and 1", a, b)
	}
}
