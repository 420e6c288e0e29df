// Command loadbench drives the same franz-go producer load (idempotent, acks=all) at an in-process
// 3-broker kfake cluster directly, through the proxy binary with no sinks (tee off), and through a
// second proxy process whose sink tees every round's topic into an in-process OpenMLDB-compatible
// cluster (tee on), alternating targets round by round. It prints throughput, produce latency at a
// fixed offered rate and at full speed, and the proxy's CPU time per MB and per row (utime+stime of
// its process from /proc); for the tee it checks the table holds exactly the records produced.
//
//	go run ./e2e/cmd/loadbench                                  # direct vs proxy, about 1-2 minutes
//	go run ./e2e/cmd/loadbench -tee                             # seed-shaped records, tee off vs on
//	go run ./e2e/cmd/loadbench -tee -blackhole                  # the same with kfake discarding records
//	go run ./e2e/cmd/loadbench -smoke                           # seconds; what the package test runs
//	go run ./e2e/cmd/loadbench -targets direct                  # no proxy needed
//
// Extension points: generators() names the record shapes (-generator), targetsFor() the targets
// (-targets).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// options are the command-line settings of one run.
type options struct {
	rounds       int
	rate         int
	rateDuration time.Duration
	fullRecords  int
	fullDuration time.Duration
	warmup       int
	size         int
	brokers      int
	partitions   int
	linger       time.Duration
	maxBuffered  int
	batchBytes   int
	compression  string
	generator    string
	targets      string
	proxyBin     string
	proxyArgs    string
	store        bool
	timeout      time.Duration
	seedMessage  string
	cpuProfile   string
	cluster      string
	sinkIndex    string // -sink-index as given ("" = OpenMLDB's default index)
	indexKeys    []string
	indexTS      string
}

func parseOptions(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every target once, alternating the order")
	fs.IntVar(&o.rate, "rate", 10000, "offered rate of the fixed-rate phase, records/s")
	fs.DurationVar(&o.rateDuration, "rate-duration", 3*time.Second, "length of the fixed-rate phase")
	fs.DurationVar(&o.fullDuration, "full-duration", 2*time.Second, "length of the full-speed phase (issuing stops then; acks are awaited)")
	fs.IntVar(&o.fullRecords, "full-records", 1000000, "most records in the full-speed phase")
	fs.IntVar(&o.warmup, "warmup", 1000, "unmeasured records before each target's phases")
	fs.IntVar(&o.size, "size", 1024, "record value size in bytes")
	fs.IntVar(&o.brokers, "brokers", 3, "kfake brokers")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of each round's topic")
	fs.DurationVar(&o.linger, "linger", 0, "producer linger (kgo's default is 10ms, which would dominate latency)")
	fs.IntVar(&o.maxBuffered, "max-buffered", 10000, "producer's buffered-record cap; at full speed latency is mostly time spent in this queue")
	fs.IntVar(&o.batchBytes, "batch-bytes", 0, "producer's largest record batch in bytes, per partition (0: kgo's default, about 1 MB; the Java client's batch.size default is 16384)")
	fs.StringVar(&o.compression, "compression", "none", "producer codec: none, gzip, snappy, lz4, zstd")
	fs.StringVar(&o.generator, "generator", "random", "record generator: random (-size bytes) or seed (the seed guide's message.json with c3_int64 = record index)")
	fs.StringVar(&o.targets, "targets", "direct,proxy", "comma-separated targets: direct, proxy (tee off), tee (tee on)")
	fs.StringVar(&o.seedMessage, "seed-message", "", "seed message for -generator seed (default e2e/testdata/seed/message.json of the module)")
	teeRun := fs.Bool("tee", false, "tee benchmark preset: -generator seed -targets proxy,tee")
	fs.StringVar(&o.proxyBin, "proxy-bin", "", "built proxy binary (default: go build the module's command)")
	fs.StringVar(&o.proxyArgs, "proxy-args", "", "extra space-separated arguments for the proxy")
	blackhole := fs.Bool("blackhole", false, "kfake acknowledges without storing records (cheaper broker; default stores, and each round's topic is deleted after it)")
	fs.DurationVar(&o.timeout, "timeout", 8*time.Minute, "bound on the whole run")
	fs.StringVar(&o.cluster, "cluster", "inproc", "where the tee's OpenMLDB-compatible cluster runs: process (its own, like a real server) or inproc (this process, sharing its heap and collector with kfake and the producer)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile (kfake, the OpenMLDB-compatible cluster, the producer) to this file")
	fs.StringVar(&o.sinkIndex, "sink-index", "", "index of the tee's auto-created tables, KEY[,KEY...][:TS] over the seed's fields (default: OpenMLDB's default index, no TS column); c7_string:c9_timestamp makes every seed record tie (one key, one event time), c3_int64:c9_timestamp gives every record its own key")
	smoke := fs.Bool("smoke", false, "tiny run for tests: 1 round, 2000 records/s for 300ms, 2000 full-speed records")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.store = !*blackhole
	if *teeRun {
		o.generator, o.targets = "seed", "proxy,tee"
	}
	if *smoke {
		o.rounds, o.rate, o.rateDuration, o.fullRecords, o.fullDuration, o.warmup = 1, 2000, 300*time.Millisecond, 2000, 300*time.Millisecond, 100
	}
	if o.sinkIndex != "" {
		keys, ts, _ := strings.Cut(o.sinkIndex, ":")
		o.indexKeys, o.indexTS = strings.Split(keys, ","), ts
		if slices.Contains(o.indexKeys, "") {
			return o, fmt.Errorf("-sink-index %q: want KEY[,KEY...][:TS]", o.sinkIndex)
		}
	}
	if o.cluster != "process" && o.cluster != "inproc" {
		return o, fmt.Errorf("-cluster %q: want process or inproc", o.cluster)
	}
	if o.rounds < 1 || o.rate < 1 || o.fullRecords < 1 || o.size < 1 {
		return o, errors.New("rounds, rate, full-records and size must be positive")
	}
	return o, nil
}

// generator resolves -generator.
func generator(ctx context.Context, o options) (harness.Generator, error) {
	switch o.generator {
	case "random":
		return harness.NewRandomBytes(o.size), nil
	case "seed":
		path := o.seedMessage
		if path == "" {
			root, err := harness.ModuleRoot(ctx, ".")
			if err != nil {
				return nil, err
			}
			path = filepath.Join(root, "e2e", "testdata", "seed", "message.json")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("seed message: %w", err)
		}
		return harness.NewSeedRecords(b)
	}
	return nil, fmt.Errorf("unknown generator %q (known: random, seed)", o.generator)
}

// target is one place the load is sent to.
type target struct {
	name string
	// viaProxy selects a proxy's bootstrap address instead of kfake's.
	viaProxy bool
	// tee selects the proxy process with a sink for the round topics.
	tee bool
}

// targetsFor resolves -targets.
func targetsFor(list string) ([]target, error) {
	known := map[string]target{
		"direct": {name: "direct"},
		"proxy":  {name: "proxy", viaProxy: true},
		"tee":    {name: "tee", viaProxy: true, tee: true},
	}
	var out []target
	for _, n := range strings.Split(list, ",") {
		t, ok := known[strings.TrimSpace(n)]
		if !ok {
			return nil, fmt.Errorf("unknown target %q (known: direct, proxy, tee)", n)
		}
		out = append(out, t)
	}
	return out, nil
}

func codecFor(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseOptions(args, out)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	gen, err := generator(ctx, o)
	if err != nil {
		return err
	}
	codec, err := codecFor(o.compression)
	if err != nil {
		return err
	}
	targets, err := targetsFor(o.targets)
	if err != nil {
		return err
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	cluster, err := harness.StartKafka(harness.KafkaOptions{Brokers: o.brokers, Partitions: int32(o.partitions), Blackhole: !o.store})
	if err != nil {
		return err
	}
	defer cluster.Close()

	procs := &proxies{}
	defer procs.close()
	for _, t := range targets {
		if err := procs.launch(ctx, o, cluster, t); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "loadbench: %d brokers, %d partitions, %d-byte %s records, acks=all, idempotent, compression %s, linger %s, max buffered %d, kfake %s\n",
		o.brokers, o.partitions, len(gen.Value(0)), gen.Name(), o.compression, o.linger, o.maxBuffered, map[bool]string{true: "storing", false: "blackholing"}[o.store])
	if procs.ns != "" {
		index := "OpenMLDB's default index"
		if o.sinkIndex != "" {
			index = "index " + o.sinkIndex
		}
		fmt.Fprintf(out, "tee: sink topics_regex %q auto_create (%s) into %s on the OpenMLDB-compatible cluster (standalone, nameserver %s, -cluster %s)\n",
			teeTopicRegex, index, teeDB, procs.ns, o.cluster)
	}
	fmt.Fprintf(out, "per round and target: %d warm-up records, %d records/s for %s, then full speed for %s (at most %d records)\n\n",
		o.warmup, o.rate, o.rateDuration, o.fullDuration, o.fullRecords)

	stats := map[string][]roundStats{}
	for round := 1; round <= o.rounds; round++ {
		order := append([]target(nil), targets...)
		if round%2 == 0 {
			// Alternate the order so neither target always runs on a warmer (or more tired) machine.
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, t := range order {
			rs, err := runRound(ctx, o, cluster, procs, t, round, gen, codec)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", round, t.name, err)
			}
			stats[t.name] = append(stats[t.name], rs)
			printRound(out, round, t, rs)
		}
	}
	fmt.Fprintln(out)
	printSummary(out, o, targets, stats)
	return nil
}

// roundStats is one target's measurements in one round.
type roundStats struct {
	fixed, full phaseResult
	rows        int           // rows found in the tee's table (tee target only)
	benchCPU    time.Duration // CPU of this process (kfake, producer) and the OpenMLDB-compatible cluster in the full phase
}

func runRound(ctx context.Context, o options, cluster *kfake.Cluster, procs *proxies, t target, round int, gen harness.Generator, codec kgo.CompressionCodec) (roundStats, error) {
	// Underscores, not dashes: the tee's topic is also its table name, an OpenMLDB identifier.
	topic := fmt.Sprintf("bench_%s_r%d", t.name, round)
	proxy := procs.forTarget(t)
	if err := cluster.CreateTopic(topic, int32(o.partitions), nil); err != nil {
		return roundStats{}, fmt.Errorf("create topic %s: %w", topic, err)
	}
	defer func() {
		if err := cluster.DeleteTopic(topic); err != nil {
			fmt.Fprintf(os.Stderr, "loadbench: delete topic %s: %v\n", topic, err)
		}
	}()
	settle()
	seeds := cluster.ListenAddrs()
	if t.viaProxy {
		seeds = []string{proxy.Addr}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("okp-loadbench"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(o.linger),
		kgo.MaxBufferedRecords(o.maxBuffered),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
	}
	if o.batchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(o.batchBytes)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return roundStats{}, fmt.Errorf("kgo client: %w", err)
	}
	defer cl.Close()
	l := &loader{cl: cl, topic: topic, gen: gen}
	if _, err := l.produce(ctx, o.warmup, nil, time.Time{}); err != nil {
		return roundStats{}, fmt.Errorf("warm-up: %w", err)
	}
	var rs roundStats
	cpu := cpuMeter(proxy)
	if rs.fixed, err = l.produce(ctx, int(float64(o.rate)*o.rateDuration.Seconds()), pacer(o.rate), time.Time{}); err != nil {
		return rs, fmt.Errorf("fixed-rate phase: %w", err)
	}
	if rs.fixed.cpu, err = cpu(); err != nil {
		return rs, err
	}
	cpu = cpuMeter(proxy)
	self, err := harness.ProcessCPUTime(os.Getpid())
	if err != nil {
		return rs, err
	}
	clusterBefore, err := procs.clusterCPU()
	if err != nil {
		return rs, err
	}
	if rs.full, err = l.produce(ctx, o.fullRecords, nil, time.Now().Add(o.fullDuration)); err != nil {
		return rs, fmt.Errorf("full-speed phase: %w", err)
	}
	if rs.full.cpu, err = cpu(); err != nil {
		return rs, err
	}
	after, err := harness.ProcessCPUTime(os.Getpid())
	if err != nil {
		return rs, err
	}
	clusterAfter, err := procs.clusterCPU()
	if err != nil {
		return rs, err
	}
	rs.benchCPU = after - self + clusterAfter - clusterBefore
	if t.tee {
		// Every acknowledged record must be a row already: the tee answers only after both writes.
		if rs.rows, err = procs.checkTable(ctx, topic, l.next); err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// settle lets this process (kfake, the test cluster, the producer) finish collecting what the
// previous target's full-speed phase left behind, so it does not land on the next target's
// fixed-rate phase. Without it the target that follows the faster one (more records stored by
// kfake, more garbage) would pay for it, and alternating the order cannot even that out over an
// odd number of rounds.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(200 * time.Millisecond)
}

// cpuMeter starts measuring the proxy's CPU time; the returned function reports the time used
// since. Without a proxy it reports 0.
func cpuMeter(p *harness.Proxy) func() (time.Duration, error) {
	if p == nil {
		return func() (time.Duration, error) { return 0, nil }
	}
	before, err := p.CPUTime()
	return func() (time.Duration, error) {
		if err != nil {
			return 0, err
		}
		after, err := p.CPUTime()
		if err != nil {
			return 0, err
		}
		return after - before, nil
	}
}
