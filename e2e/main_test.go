// Package e2e runs real Kafka clients as black boxes through the built proxy binary in front of an
// in-process 3-broker kfake cluster, and checks that what they produce is consumed back exactly and
// that every broker address they learn is one of the proxy's.
//
// Environment:
//
//	OKP_PROXY_BIN=/path   use an already built binary instead of building one
//	OKP_E2E_DIRECT=1      point the clients straight at kfake (develops the tests without a proxy)
//	CI=true               a missing system tool (kcat, python modules) fails instead of skipping
package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/zktest"
)

// suiteConfig is decided once in TestMain and read by every test.
type suiteConfig struct {
	bin      string // built proxy binary; empty in direct mode
	direct   bool
	buildErr error

	// zk is the one ZooKeeper the tee tests share (each under its own root path), started by the
	// first test that needs it: a JVM per test would cost seconds of CPU each on 2 cores.
	zkOnce sync.Once
	zk     *zktest.Server
	zkErr  error
	// zkSeq makes every tee test's ZooKeeper root unique, also across -count repetitions.
	zkSeq atomic.Int64
}

var suite suiteConfig

func TestMain(m *testing.M) {
	code := runMain(m)
	if suite.zk != nil {
		suite.zk.Stop()
	}
	os.Exit(code)
}

// sharedZK returns the suite's ZooKeeper, starting it on first use.
func sharedZK(t *testing.T) *zktest.Server {
	t.Helper()
	suite.zkOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		suite.zk, suite.zkErr = zktest.Start(ctx)
	})
	if suite.zkErr != nil {
		t.Fatalf("zookeeper: %v", suite.zkErr)
	}
	return suite.zk
}

func runMain(m *testing.M) int {
	if os.Getenv("OKP_E2E_DIRECT") == "1" {
		suite.direct = true
		return m.Run()
	}
	if bin := os.Getenv("OKP_PROXY_BIN"); bin != "" {
		suite.bin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "okp-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := harness.ModuleRoot(ctx, ".")
	if err == nil {
		suite.bin, err = harness.BuildProxy(ctx, root, dir)
	}
	// A failed build fails every test that needs the proxy (with the compiler output) instead of
	// aborting the run, so the report still lists each test.
	suite.buildErr = err
	return m.Run()
}
