package openmldb_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// go-zookeeper calls take no context, so a refresh whose context ends leaves its catalog load
// running. While ZooKeeper hangs, refreshes retried by every writer must not pile up such loads:
// each waits for the one already running. Once ZooKeeper answers again, a refresh succeeds.
func TestRefreshesWhileZooKeeperHangsShareOneLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 2}, 0)
	if err := e.zk.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = e.zk.Resume()
		}
	}()
	before := runtime.NumGoroutine()
	const refreshes = 30
	for range refreshes {
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := e.client.Refresh(rctx)
		rcancel()
		if err == nil {
			t.Fatal("a refresh succeeded while ZooKeeper was stopped")
		}
	}
	grown := runtime.NumGoroutine() - before
	t.Logf("goroutines after %d refreshes against a stopped ZooKeeper: %+d", refreshes, grown)
	if grown > 5 {
		t.Errorf("%d goroutines more after %d refreshes that timed out: each left its ZooKeeper load running", grown, refreshes)
	}
	if err := e.zk.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if err := e.client.Refresh(rctx); err != nil {
		t.Fatalf("refresh after ZooKeeper came back: %v", err)
	}
}
