package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// opsEnv is kfake + the OpenMLDB-compatible cluster, with serveOps running against a config file.
type opsEnv struct {
	kafka   *kfake.Cluster
	cluster *openmldbtest.Cluster
	store   *openmldb.Client
	file    string
	listen  string
	admin   string
	proxy   *proxy.Proxy // once serving
	level   *slog.LevelVar
	hup     chan os.Signal
	reloads chan error
	done    chan error
	stop    context.CancelFunc
}

// writeConfig writes the YAML configuration with one sink topic1 → table.
func (e *opsEnv) writeConfig(t *testing.T, table, extra string) {
	t.Helper()
	y := fmt.Sprintf(`listen: %s
kafka:
  bootstrap: [%s]
admin:
  listen: 127.0.0.1:0
shutdown:
  drain_timeout: 20s
log:
  level: warn
openmldb:
  nameserver: %s
  database: kafka_test
sinks:
  - topics: [topic1]
    table: %s
    auto_create: true
%s`, e.listen, e.kafka.ListenAddrs()[0], e.cluster.Nameserver(), table, extra)
	if err := os.WriteFile(e.file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startOps(t *testing.T, table string) *opsEnv {
	t.Helper()
	return startOpsExtra(t, table, "")
}

func startOpsExtra(t *testing.T, table, extra string) *opsEnv {
	t.Helper()
	return startOpsFull(t, table, extra, nil, nil)
}

func startOpsFull(t *testing.T, table, extra string, kafkaOpts []kfake.Opt, args []string) *opsEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &opsEnv{file: filepath.Join(t.TempDir(), "proxy.yaml"), hup: make(chan os.Signal, 1),
		reloads: make(chan error, 4), done: make(chan error, 1)}
	var err error
	e.kafka, err = kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "topic1", "dlq")}, kafkaOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.kafka.Close)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.cluster, err = openmldbtest.Start(ctx, openmldbtest.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cluster.Close)
	e.store, err = openmldb.Open(ctx, openmldb.Options{Nameserver: e.cluster.Nameserver(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.store.Close)
	if err := e.store.CreateDatabase(ctx, "kafka_test", true); err != nil {
		t.Fatal(err)
	}
	e.listen = "127.0.0.1:" + strconv.Itoa(freeport.BlockT(t, 2)) // bootstrap, then broker 0
	e.writeConfig(t, table, extra)
	load := func() (*config.Config, error) {
		return config.Load("run", append([]string{"--config", e.file}, args...), nil)
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	log, level := newLoggerVar(cfg.Log)
	e.level = level
	started := make(chan string, 1)
	proxies := make(chan *proxy.Proxy, 1)
	sctx, stop := context.WithCancel(context.Background())
	e.stop = stop
	go func() {
		e.done <- serveOps(sctx, log, cfg, opsRuntime{level: level, reload: e.hup, load: load,
			started: func(a string, p *proxy.Proxy) { started <- a; proxies <- p }, reloaded: func(err error) { e.reloads <- err }})
	}()
	select {
	case e.admin = <-started:
		e.proxy = <-proxies
	case err := <-e.done:
		t.Fatalf("serve: %v", err)
	case <-ctx.Done():
		t.Fatal("proxy did not start")
	}
	t.Cleanup(func() {
		stop()
		select {
		case <-e.done:
		case <-time.After(40 * time.Second):
			t.Error("serve did not return")
		}
	})
	return e
}

// reload sends SIGHUP and returns the reload's outcome.
func (e *opsEnv) reload(t *testing.T) error {
	t.Helper()
	e.hup <- syscall.SIGHUP
	select {
	case err := <-e.reloads:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("reload did not finish")
		return nil
	}
}

// scrape returns the sum of the samples of a metric without labels.
func (e *opsEnv) scrape(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no sample %s", name)
	return 0
}

// seedRecord is the seed guide's message with c3_int64 = id.
func seedRecord(id int64) *kgo.Record {
	v := fmt.Sprintf(`{"schema":{"type":"struct","fields":[{"type":"int16","optional":true,"field":"c1_int16"},{"type":"int64","optional":true,"field":"c3_int64"},{"type":"string","optional":true,"field":"c7_string"},{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp","optional":true,"field":"c9_timestamp"}],"optional":false,"name":"foobar"},"payload":{"c1_int16":1,"c3_int64":%d,"c7_string":"k%d","c9_timestamp":1651051906000}}`, id, id%16)
	return &kgo.Record{Topic: "topic1", Value: []byte(v)}
}

// tableIDs returns the c3_int64 values stored in kafka_test.table.
func (e *opsEnv) tableIDs(t *testing.T, table string) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tbl, err := e.store.Table("kafka_test", table)
	if err != nil {
		return map[int64]bool{}
	}
	raw, err := e.cluster.Rows("kafka_test", table)
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, c := range tbl.Columns {
		if c.Name == "c3_int64" {
			col = i
		}
	}
	out := map[int64]bool{}
	for _, b := range raw {
		row, err := openmldb.DecodeRow(tbl.Columns, b)
		if err != nil {
			t.Fatal(err)
		}
		out[row[col].I] = true
	}
	return out
}

// topicIDs consumes topic1 directly from the broker and returns the c3_int64 of every record.
func (e *opsEnv) topicIDs(t *testing.T) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.ListenAddrs()...), kgo.ConsumeTopics("topic1"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int64]bool{}
	idle := 0
	for idle < 2 {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			t.Fatal("consuming topic1 timed out")
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			s := string(r.Value)
			i := strings.Index(s, `"c3_int64":`) + len(`"c3_int64":`)
			j := strings.IndexByte(s[i:], ',')
			id, err := strconv.ParseInt(s[i:i+j], 10, 64)
			if err != nil {
				t.Fatalf("record %q: %v", s, err)
			}
			out[id] = true
		})
		if n == 0 {
			idle++
		}
	}
	return out
}

func TestReloadSwapsSinkWithoutDroppingConnections(t *testing.T) {
	e := startOps(t, "table_a")
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.listen))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, seedRecord(1), seedRecord(2)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := e.tableIDs(t, "table_a"); !got[1] || !got[2] {
		t.Fatalf("table_a before reload: %v", got)
	}
	conns := e.scrape(t, "okp_client_connections_total")

	e.writeConfig(t, "table_b", "")
	if err := os.WriteFile(e.file, []byte(strings.Replace(mustRead(t, e.file), "level: warn", "level: debug", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if e.level.Level() != slog.LevelDebug {
		t.Errorf("log level after reload: %v, want debug", e.level.Level())
	}
	if err := cl.ProduceSync(ctx, seedRecord(3)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := e.tableIDs(t, "table_b"); !got[3] || len(got) != 1 {
		t.Errorf("table_b after reload: %v, want {3}", got)
	}
	if got := e.tableIDs(t, "table_a"); got[3] {
		t.Errorf("record 3 went to the old table: %v", got)
	}

	// An invalid file is rejected and the running sinks stay.
	e.writeConfig(t, "table_c", "    on_invalid: sometimes\n")
	if err := e.reload(t); err == nil || !strings.Contains(err.Error(), "on_invalid") {
		t.Errorf("invalid reload: err %v, want one naming on_invalid", err)
	}
	if err := os.WriteFile(e.file, []byte("sinks: [unclosed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(t); err == nil {
		t.Error("reload of a malformed YAML file succeeded")
	}
	if err := cl.ProduceSync(ctx, seedRecord(4)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := e.tableIDs(t, "table_b"); !got[4] {
		t.Errorf("table_b after rejected reloads: %v, want 4 in it", got)
	}
	if got := e.tableIDs(t, "table_c"); len(got) != 0 {
		t.Errorf("table_c exists with %v after a rejected reload", got)
	}
	if after := e.scrape(t, "okp_client_connections_total"); after != conns {
		t.Errorf("client connections total went from %v to %v across reloads: connections were dropped", conns, after)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDrainKeepsEveryAcknowledgedRecord produces continuously through the proxy with the tee,
// stalls OpenMLDB Puts so writes are in flight, stops the proxy as SIGTERM does, and checks that
// every record the producer got an ack for is both in the topic and in the table.
func TestDrainKeepsEveryAcknowledgedRecord(t *testing.T) {
	e := startOps(t, "drained")
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.listen), kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.ProducerLinger(0), kgo.RecordRetries(3))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	var mu sync.Mutex
	acked := map[int64]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := int64(1); pctx.Err() == nil; id++ {
			id := id
			sem := make(chan struct{})
			cl.Produce(pctx, seedRecord(id), func(_ *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
				close(sem)
			})
			if id%8 == 0 { // keep a bounded window of records in flight
				select {
				case <-sem:
				case <-pctx.Done():
				}
			}
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for ackedCount() < 200 {
		if pctx.Err() != nil {
			t.Fatalf("only %d records acknowledged", ackedCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Hold Puts briefly so the drain starts with OpenMLDB writes in flight.
	e.cluster.StallPuts(300 * time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	inflight := e.scrape(t, "okp_inflight_requests")
	e.stop() // what SIGTERM does in runCmd
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("serve after drain: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("drain did not finish")
	}
	e.done <- nil // for the cleanup
	pcancel()
	wg.Wait()
	cl.Close()
	mu.Lock()
	final := make(map[int64]bool, len(acked))
	for id := range acked {
		final[id] = true
	}
	mu.Unlock()
	t.Logf("acknowledged %d records; %v requests in flight when the drain began", len(final), inflight)
	inTopic := e.topicIDs(t)
	inTable := e.tableIDs(t, "drained")
	var missingTopic, missingTable []int64
	for id := range final {
		if !inTopic[id] {
			missingTopic = append(missingTopic, id)
		}
		if !inTable[id] {
			missingTable = append(missingTable, id)
		}
	}
	if len(missingTopic) > 0 || len(missingTable) > 0 {
		t.Errorf("acknowledged but missing: %d from the topic %v, %d from the table %v",
			len(missingTopic), first(missingTopic), len(missingTable), first(missingTable))
	}
}

func first(ids []int64) []int64 {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}

// apiVersionsWorks opens a connection to addr and reports whether an ApiVersions request is
// answered on it (a connection refused at max_connections is closed at once).
func apiVersionsWorks(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("reload-test")).AppendRequest(nil, req, 1)
	if _, err := c.Write(frame); err != nil {
		return c, false
	}
	return c, readFrame(c) == nil
}

// readFrame reads one size-prefixed response frame.
func readFrame(c net.Conn) error {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return err
	}
	n := int(size[0])<<24 | int(size[1])<<16 | int(size[2])<<8 | int(size[3])
	_, err := io.ReadFull(c, make([]byte, n))
	return err
}

// A reload applies new limits to the running proxy: max_connections lowered refuses the next
// connection while the open one keeps working; raised again, new connections are served.
func TestReloadAppliesLimits(t *testing.T) {
	e := startOps(t, "table_a")
	e.writeConfig(t, "table_a", "limits:\n  max_connections: 1\n")
	if err := e.reload(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	first, ok := apiVersionsWorks(t, e.listen)
	if !ok {
		t.Fatal("first connection under max_connections 1 not served")
	}
	if _, ok := apiVersionsWorks(t, e.listen); ok {
		t.Fatal("second connection served under max_connections 1")
	}
	e.writeConfig(t, "table_a", "limits:\n  max_connections: 2\n")
	if err := e.reload(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if _, ok := apiVersionsWorks(t, e.listen); !ok {
		t.Fatal("second connection not served after max_connections was raised to 2")
	}
	// The first connection lived through both reloads.
	frame := kmsg.NewRequestFormatter().AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 2)
	if _, err := first.Write(frame); err != nil {
		t.Fatal(err)
	}
	if err := readFrame(first); err != nil {
		t.Fatalf("first connection after the reloads: %v", err)
	}
}

// When the proxy stops serving by itself (its gnet engine ended without a shutdown: every client
// connection and the bootstrap listener are gone), run returns an error naming the cause, so the
// process exits non-zero and its supervisor restarts it.
func TestRunFailsWhenTheProxyStopsServing(t *testing.T) {
	e := startOps(t, "failed_tbl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gnet.Stop(ctx, e.proxy.EngineAddr()); err != nil { //nolint:staticcheck // the only way to stop it from outside
		t.Fatal(err)
	}
	select {
	case err := <-e.done:
		if err == nil || !strings.Contains(err.Error(), "proxy stopped serving: gnet engine stopped") {
			t.Errorf("run after the engine stopped: %v, want the failure", err)
		}
		e.done <- nil // for the cleanup
	case <-ctx.Done():
		t.Fatal("run goes on after the proxy stopped serving")
	}
}

// A database OpenMLDB does not have is refused at start, naming it and what exists: before, the
// proxy started and refused every record as invalid (auto-create failing with code 802), as if
// the data were wrong. A wrong zk_path names the path it looked under.
func TestRunRefusesADatabaseOpenMLDBDoesNotHave(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cluster, err := openmldbtest.Start(ctx, openmldbtest.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	file := filepath.Join(t.TempDir(), "proxy.yaml")
	y := fmt.Sprintf("listen: 127.0.0.1:%d\nkafka:\n  bootstrap: [%s]\nadmin:\n  listen: \"\"\nopenmldb:\n  nameserver: %s\n  database: nosuchdb\nsinks:\n  - topics: [topic1]\n    auto_create: true\n",
		freeport.BlockT(t, 2), kafka.ListenAddrs()[0], cluster.Nameserver())
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("run", []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = serveOps(ctx, quiet, cfg, opsRuntime{})
	if err == nil || !strings.Contains(err.Error(), `OpenMLDB has no database "nosuchdb"`) || !strings.Contains(err.Error(), "CREATE DATABASE nosuchdb") {
		t.Fatalf("run with a database OpenMLDB does not have: %v", err)
	}
}

// scan of a database OpenMLDB does not have says so (it said "table not found").
func TestScanNamesAMissingDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := openmldbtest.Start(ctx, openmldbtest.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	err = scanCmd([]string{"--openmldb.nameserver", cluster.Nameserver(), "nosuchdb.t"})
	if err == nil || !strings.Contains(err.Error(), `OpenMLDB has no database "nosuchdb"`) {
		t.Fatalf("scan nosuchdb.t: %v", err)
	}
}
