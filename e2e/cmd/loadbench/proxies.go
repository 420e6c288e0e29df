package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

const (
	// teeDB is the database of the tee's tables, as in the seed guide.
	teeDB = "kafka_test"
	// teeTopicRegex matches the tee target's round topics, and no other target's.
	teeTopicRegex = "bench_tee_.*"
)

// proxies holds the processes the targets need: one proxy without sinks (tee off), one with a sink
// for the tee rounds' topics (tee on) and the OpenMLDB-compatible cluster it writes to, which
// runs in this process (so its CPU is not counted as the proxy's).
type proxies struct {
	bin   string
	dir   string
	plain *harness.Proxy
	tee   *harness.Proxy
	om    *openmldbtest.Cluster
	store *openmldb.Client
}

// launch starts what target t needs, once.
func (p *proxies) launch(ctx context.Context, o options, cluster *kfake.Cluster, t target) error {
	switch {
	case !t.viaProxy:
		return nil
	case !t.tee && p.plain == nil:
		var err error
		p.plain, err = p.start(ctx, o, cluster, strings.Fields(o.proxyArgs))
		return err
	case t.tee && p.tee == nil:
		return p.startTee(ctx, o, cluster)
	}
	return nil
}

// forTarget is the proxy process of t; nil for direct.
func (p *proxies) forTarget(t target) *harness.Proxy {
	switch {
	case !t.viaProxy:
		return nil
	case t.tee:
		return p.tee
	}
	return p.plain
}

func (p *proxies) start(ctx context.Context, o options, cluster *kfake.Cluster, args []string) (*harness.Proxy, error) {
	bin, err := p.binary(ctx, o)
	if err != nil {
		return nil, err
	}
	return harness.StartProxy(ctx, harness.ProxyOptions{
		Bin:       bin,
		Upstream:  cluster.ListenAddrs(),
		Brokers:   o.brokers,
		ExtraArgs: args,
	})
}

// binary builds the proxy once unless -proxy-bin names one.
func (p *proxies) binary(ctx context.Context, o options) (string, error) {
	if o.proxyBin != "" {
		return o.proxyBin, nil
	}
	if p.bin != "" {
		return p.bin, nil
	}
	dir, err := p.tempDir()
	if err != nil {
		return "", err
	}
	root, err := harness.ModuleRoot(ctx, ".")
	if err != nil {
		return "", err
	}
	if p.bin, err = harness.BuildProxy(ctx, root, dir); err != nil {
		return "", err
	}
	return p.bin, nil
}

func (p *proxies) tempDir() (string, error) {
	if p.dir == "" {
		dir, err := os.MkdirTemp("", "okp-loadbench-")
		if err != nil {
			return "", fmt.Errorf("temp dir: %w", err)
		}
		p.dir = dir
	}
	return p.dir, nil
}

// startTee starts the standalone OpenMLDB-compatible cluster, creates kafka_test, and starts the
// proxy with a YAML config whose sink auto-creates each tee round's table.
func (p *proxies) startTee(ctx context.Context, o options, cluster *kfake.Cluster) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	om, err := openmldbtest.Start(sctx, openmldbtest.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("start OpenMLDB-compatible cluster: %w", err)
	}
	p.om = om
	if p.store, err = openmldb.Open(sctx, openmldb.Options{Nameserver: om.Nameserver(), Logger: log}); err != nil {
		return fmt.Errorf("connect to the OpenMLDB-compatible cluster: %w", err)
	}
	if err := p.store.CreateDatabase(sctx, teeDB, true); err != nil {
		return fmt.Errorf("create database %s: %w", teeDB, err)
	}
	dir, err := p.tempDir()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf("openmldb:\n  nameserver: %q\n  database: %s\nsinks:\n  - topics_regex: %q\n    auto_create: true\n",
		om.Nameserver(), teeDB, teeTopicRegex)
	path := filepath.Join(dir, "tee.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write tee config: %w", err)
	}
	p.tee, err = p.start(ctx, o, cluster, append([]string{"--config", path}, strings.Fields(o.proxyArgs)...))
	return err
}

// checkTable verifies the tee's table for topic holds exactly want rows, then drops it so the
// cluster's memory stays flat across rounds.
func (p *proxies) checkTable(ctx context.Context, topic string, want int) (int, error) {
	got, err := p.om.Count(teeDB, topic)
	if err != nil {
		return 0, fmt.Errorf("count %s.%s: %w", teeDB, topic, err)
	}
	if got != want {
		return got, fmt.Errorf("table %s.%s holds %d rows, but %d records were acknowledged", teeDB, topic, got, want)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.store.DropTable(dctx, teeDB, topic); err != nil {
		return got, fmt.Errorf("drop %s.%s: %w", teeDB, topic, err)
	}
	return got, nil
}

// close stops everything started, proxies first.
func (p *proxies) close() {
	for _, px := range []*harness.Proxy{p.plain, p.tee} {
		if px != nil {
			if err := px.Stop(5 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, "loadbench: stop proxy:", err)
			}
		}
	}
	if p.store != nil {
		p.store.Close()
	}
	if p.om != nil {
		p.om.Close()
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}
