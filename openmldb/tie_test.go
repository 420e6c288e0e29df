package openmldb_test

import (
	"context"
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

// checkNewestLast scans key (index 0, no TS column) and fails unless its n rows read newest
// first in reverse id order (ids are the write order).
func checkNewestLast(t *testing.T, ctx context.Context, c *openmldb.Client, tb *openmldb.Table, key string, n int) {
	t.Helper()
	rows, err := c.Scan(ctx, tb, 0, key, 0)
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
		var wg sync.WaitGroup
		for w := range writes {
			wg.Add(1)
			e.client.WriteAsync(ctx, tb, tieRows(run, w*per, per), openmldb.WriteOptions{}, func(errs []error) {
				defer wg.Done()
				for i, err := range errs {
					if err != nil {
						t.Errorf("run %d write %d row %d: %v", run, w, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		checkNewestLast(t, ctx, e.client, tb, strconv.Itoa(run), writes*per)
	}
}
