package openmldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// TestIntegrationZKSessionExpiry takes ZooKeeper away for longer than every session timeout
// (client 2s, negotiated up to ZooKeeper's 4s minimum; cluster 4s): all sessions expire and
// every ephemeral node goes. After the restart the cluster re-registers its tablets and
// nameserver in new sessions, and the client gets a new session, re-installs its watches and
// rebuilds its catalog: a table created afterwards through another client appears through the
// notify watch, and writes to old and new tables succeed.
func TestIntegrationZKSessionExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 3}, 0)
	before := createTestTable(t, ctx, e.client, "zs", "before", 4, 2)
	write := func(tb *openmldb.Table, from, n int) {
		t.Helper()
		rows := make([]openmldb.Row, n)
		for i := range rows {
			rows[i] = testRow(from + i)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		for i, err := range e.client.Write(wctx, tb, rows, openmldb.WriteOptions{}) {
			if err != nil {
				t.Fatalf("%s row %d: %v", tb.Name, from+i, err)
			}
		}
	}
	write(before, 0, 200)
	oldSession := openmldb.ZKSessionID(e.client)
	if oldSession == 0 {
		t.Fatal("client has no ZooKeeper session")
	}

	if err := e.zk.Restart(8 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "a new client session", func() bool {
		id := openmldb.ZKSessionID(e.client)
		return id != 0 && id != oldSession
	})

	// Another client finds the nameserver through the re-created leader/ node.
	other, err := openmldb.Open(ctx, openmldb.Options{ZKCluster: e.zk.Addr, ZKPath: e.cluster.ZKPath(), Logger: quiet, RPCTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open a client after the restart: %v", err)
	}
	defer other.Close()
	if n := len(other.Tablets()); n != 3 {
		t.Fatalf("new client sees %d tablets, want 3 re-registered: %v", n, other.Tablets())
	}
	createTestTable(t, ctx, other, "zs", "after", 4, 1)
	waitUntil(t, ctx, "the table created after the restart in the first client's catalog", func() bool {
		_, err := e.client.Table("zs", "after")
		return err == nil
	})
	after, err := e.client.Table("zs", "after")
	if err != nil {
		t.Fatal(err)
	}
	if before2, err := e.client.Table("zs", "before"); err != nil || before2.TID != before.TID {
		t.Fatalf("table from before the restart after the rebuild: %+v, %v", before2, err)
	}
	write(before, 200, 200)
	write(after, 0, 300)
	if got := readAll(t, ctx, e.client, before); len(got) != 400 {
		t.Fatalf("zs.before holds %d rows, want 400", len(got))
	}
	got := readAll(t, ctx, e.client, after)
	if len(got) != 300 {
		t.Fatalf("zs.after holds %d rows, want 300", len(got))
	}
	for i := range 300 {
		if !sameRow(got[int64(i)], testRow(i)) {
			t.Fatalf("zs.after row %d read back differs", i)
		}
	}
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
