package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
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
// for the tee rounds' topics (tee on) and the OpenMLDB-compatible cluster it writes to, in this
// process (-cluster inproc, the default) or in one of its own (-cluster process). Either way its
// CPU is not counted as the proxy's.
type proxies struct {
	bin   string
	dir   string
	plain *harness.Proxy
	tee   *harness.Proxy
	om    *openmldbtest.Cluster // -cluster inproc
	omCmd *exec.Cmd             // -cluster process
	omIn  io.WriteCloser        // the cluster process's stdin; closing it ends the process
	ns    string                // the cluster's nameserver
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
	if o.cluster == "inproc" {
		om, err := openmldbtest.Start(sctx, openmldbtest.Options{Logger: log})
		if err != nil {
			return fmt.Errorf("start OpenMLDB-compatible cluster: %w", err)
		}
		p.om, p.ns = om, om.Nameserver()
	} else if err := p.startClusterProcess(sctx); err != nil {
		return err
	}
	var err error
	if p.store, err = openmldb.Open(sctx, openmldb.Options{Nameserver: p.ns, Logger: log}); err != nil {
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
		p.ns, teeDB, teeTopicRegex)
	if len(o.indexKeys) > 0 {
		cfg += fmt.Sprintf("    index:\n      key: [%s]\n", strings.Join(o.indexKeys, ", "))
		if o.indexTS != "" {
			cfg += fmt.Sprintf("      ts: %s\n", o.indexTS)
		}
	}
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
	got, err := p.countRows(ctx, topic)
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
	if p.omCmd != nil {
		_ = p.omIn.Close()
		if err := p.omCmd.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench: OpenMLDB-compatible cluster process:", err)
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// startClusterProcess builds and starts e2e/cmd/omlcluster and waits for its nameserver address.
func (p *proxies) startClusterProcess(ctx context.Context) error {
	dir, err := p.tempDir()
	if err != nil {
		return err
	}
	root, err := harness.ModuleRoot(ctx, ".")
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "omlcluster")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./e2e/cmd/omlcluster")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./e2e/cmd/omlcluster: %w\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Stderr = os.Stderr
	if p.omIn, err = cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p.omCmd = cmd
	line, err := bufio.NewReader(stdout).ReadString('\n')
	ns, ok := strings.CutPrefix(strings.TrimSpace(line), "ready nameserver=")
	if err != nil || !ok {
		return fmt.Errorf("OpenMLDB-compatible cluster process did not report ready (read %q: %v)", line, err)
	}
	p.ns = ns
	return nil
}

// clusterCPU is the CPU time of the cluster process so far (0 when it runs in this process, where
// the bench process's own figure already has it).
func (p *proxies) clusterCPU() (time.Duration, error) {
	if p.omCmd == nil {
		return 0, nil
	}
	return harness.ProcessCPUTime(p.omCmd.Process.Pid)
}

// countRows counts the rows of the tee's table for topic by traversing it through the client.
func (p *proxies) countRows(ctx context.Context, topic string) (int, error) {
	if err := p.store.Refresh(ctx); err != nil {
		return 0, err
	}
	t, err := p.store.Table(teeDB, topic)
	if err != nil {
		return 0, err
	}
	n := 0
	err = p.store.Traverse(ctx, t, func([]byte) error {
		n++
		return nil
	})
	return n, err
}
