package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// teeDB is the database every tee test writes into, as in the seed guide.
const teeDB = "kafka_test"

// seedPath holds byte-identical copies of the seed guide's message.json and
// openmldb-sink.properties (shared/seed), used unchanged (only the ZooKeeper address is
// substituted), so the suite does not depend on a directory outside the module.
var seedPath = filepath.Join("testdata", "seed")

// teeEnv is kfake + the proxy binary with sinks + an in-process OpenMLDB-compatible cluster
// registered in the suite's real ZooKeeper under a root path of its own.
type teeEnv struct {
	*env
	om     *openmldbtest.Cluster
	store  *openmldb.Client
	zkAddr string
	zkPath string
	dir    string
}

// teeOptions configures newTeeEnv. Exactly one of sinksYAML and proxyArgs should carry the sinks.
type teeOptions struct {
	topics []string
	// sinksYAML is the `sinks:` list of a YAML config (indented by two spaces), written with the
	// openmldb section to a file passed as --config.
	sinksYAML string
	// proxyArgs replace --config when set (the seed flow passes --connector-config).
	proxyArgs func(e *teeEnv) []string
	// tables are created before the proxy starts.
	tables []openmldb.TableSpec
	// extraArgs are appended to the proxy's arguments.
	extraArgs []string
	// kafka are extra kfake options, e.g. TLS.
	kafka []kfake.Opt
}

// newTeeEnv starts the cluster in ZooKeeper, creates kafka_test and the given tables, then kfake
// and the proxy with the sinks. Everything stops when the test ends (proxy first).
func newTeeEnv(t *testing.T, o teeOptions) *teeEnv {
	t.Helper()
	if suite.direct {
		t.Skip("direct mode has no proxy, so no tee")
	}
	if suite.buildErr != nil {
		t.Fatalf("proxy binary: %v", suite.buildErr)
	}
	zk := sharedZK(t)
	e := &teeEnv{zkAddr: zk.Addr, zkPath: fmt.Sprintf("/okp-%s-%d", regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"), suite.zkSeq.Add(1)), dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	om, err := openmldbtest.Start(ctx, openmldbtest.Options{ZK: zk.Addr, ZKPath: e.zkPath, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(om.Close)
	e.om = om
	e.store, err = openmldb.Open(ctx, openmldb.Options{ZKCluster: zk.Addr, ZKPath: e.zkPath, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.store.Close)
	if err := e.store.CreateDatabase(ctx, teeDB, true); err != nil {
		t.Fatal(err)
	}
	for _, spec := range o.tables {
		spec.DB = teeDB
		if _, err := e.store.CreateTable(ctx, spec); err != nil {
			t.Fatalf("create table %s: %v", spec.Name, err)
		}
	}
	var args []string
	if o.proxyArgs != nil {
		args = o.proxyArgs(e)
	} else {
		cfg := fmt.Sprintf("openmldb:\n  zk_cluster: %q\n  zk_path: %q\n  database: %s\nsinks:\n%s", zk.Addr, e.zkPath, teeDB, o.sinksYAML)
		path := filepath.Join(e.dir, "proxy.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = []string{"--config", path}
	}
	args = append(args, o.extraArgs...)
	e.env = newEnvWith(t, envOptions{topics: o.topics, proxyArgs: args, kafka: o.kafka})
	return e
}

// scan runs `openmldb-kafka-proxy scan` through ZooKeeper and returns its JSON lines.
func (e *teeEnv) scan(t *testing.T, table string) []string {
	t.Helper()
	res, err := e.scanErr(table)
	if err != nil {
		t.Fatal(err)
	}
	return splitLines(res.Stdout)
}

// scanErr is scan returning the command's failure instead of failing the test.
func (e *teeEnv) scanErr(table string) (harness.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return harness.Run(ctx, 25*time.Second, nil, nil, suite.bin, "scan",
		"--openmldb.zk_cluster", e.zkAddr, "--openmldb.zk_path", e.zkPath, teeDB+"."+table)
}

// kcatProduce runs `kcat -P` against the proxy with the values on stdin (one per line) and
// returns its output and exit error, which the invalid-record tests inspect.
func (e *teeEnv) kcatProduce(t *testing.T, topic, stdin string, extra ...string) (harness.Result, error) {
	t.Helper()
	bin := requireTool(t, "kcat", kcatInstall)
	args := append([]string{"-b", e.bootstrap, "-P", "-t", topic}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	return harness.Run(ctx, 40*time.Second, strings.NewReader(stdin), nil, bin, args...)
}

// storedValues decodes every record value kfake stored for topic (all partitions, any codec),
// read from the brokers directly, not through the proxy.
func (e *teeEnv) storedValues(t *testing.T, topic string) []string {
	t.Helper()
	data, _ := dataBatches(e.storedBatches(t, topic))
	var out []string
	for _, b := range data {
		recs, err := batchRecords(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// batchRecords decompresses one stored batch and decodes its records.
func batchRecords(b kmsg.RecordBatch) ([]kmsg.Record, error) {
	raw := b.Records
	if codec := b.Attributes & 0x07; codec != 0 {
		var err error
		if raw, err = kgo.DefaultDecompressor().Decompress(b.Records, kgo.CompressionCodecType(codec)); err != nil {
			return nil, fmt.Errorf("decompress batch at offset %d (codec %d): %w", b.FirstOffset, codec, err)
		}
	}
	out := make([]kmsg.Record, b.NumRecords)
	for i := range out {
		n, used := varint(raw)
		if used <= 0 || used+int(n) > len(raw) {
			return nil, fmt.Errorf("batch at offset %d: record %d truncated", b.FirstOffset, i)
		}
		if err := out[i].ReadFrom(raw[:used+int(n)]); err != nil {
			return nil, fmt.Errorf("batch at offset %d: record %d: %w", b.FirstOffset, i, err)
		}
		raw = raw[used+int(n):]
	}
	return out, nil
}

// varint reads a zig-zag varint (the record length prefix).
func varint(b []byte) (int64, int) {
	var ux uint64
	for i := 0; i < len(b) && i < 10; i++ {
		ux |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int64(ux>>1) ^ -int64(ux&1), i + 1
		}
	}
	return 0, -1
}

// seedMessage returns the seed guide's message.json as one line.
func seedMessage(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(seedPath, "message.json"))
	if err != nil {
		t.Fatalf("seed message: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// seedWithID is the seed message with c3_int64 set to id, so rows are distinguishable.
func seedWithID(t *testing.T, id int) string {
	t.Helper()
	m := seedMessage(t)
	out := strings.Replace(m, `"c3_int64":3,`, fmt.Sprintf(`"c3_int64":%d,`, id), 1)
	if out == m && id != 3 {
		t.Fatal(`seed message has no "c3_int64":3,`)
	}
	return out
}

// seedRowJSON is what scan prints for the seed message with c3_int64 = id.
func seedRowJSON(id int) string {
	return fmt.Sprintf(`{"c1_int16":1,"c2_int32":2,"c3_int64":%d,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":"2022-04-27","c9_timestamp":1651051906000}`, id)
}

// scannedIDs parses scan lines and returns the c3_int64 of each row.
func scannedIDs(t *testing.T, lines []string) []int64 {
	t.Helper()
	ids := make([]int64, 0, len(lines))
	for _, l := range lines {
		var r struct {
			C3 int64 `json:"c3_int64"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("scan line %q: %v", l, err)
		}
		ids = append(ids, r.C3)
	}
	return ids
}

// checkIDs fails unless ids are exactly 0..n-1, each once.
func checkIDs(t *testing.T, what string, ids []int64, n int) {
	t.Helper()
	seen := make(map[int64]int, len(ids))
	for _, id := range ids {
		seen[id]++
	}
	for i := 0; i < n; i++ {
		if seen[int64(i)] != 1 {
			t.Fatalf("%s: id %d stored %d times (%d rows, %d distinct, want %d)", what, i, seen[int64(i)], len(ids), len(seen), n)
		}
	}
	if len(ids) != n {
		t.Fatalf("%s: %d rows, want %d", what, len(ids), n)
	}
}

// seedTable is the seed message's table as OpenMLDB's auto-create would make it, with c7_string
// NOT NULL so a NULL there is refused.
func seedTable(name string) openmldb.TableSpec {
	return openmldb.TableSpec{Name: name, Columns: []openmldb.Column{
		{Name: "c1_int16", Type: openmldb.TypeSmallInt},
		{Name: "c2_int32", Type: openmldb.TypeInt},
		{Name: "c3_int64", Type: openmldb.TypeBigInt},
		{Name: "c4_float", Type: openmldb.TypeFloat},
		{Name: "c5_double", Type: openmldb.TypeDouble},
		{Name: "c6_boolean", Type: openmldb.TypeBool},
		{Name: "c7_string", Type: openmldb.TypeString, NotNull: true},
		{Name: "c8_date", Type: openmldb.TypeDate},
		{Name: "c9_timestamp", Type: openmldb.TypeTimestamp},
	}}
}

// secondProxy starts another proxy process with the env's configuration file and extra
// arguments, on the port block at base (the first proxy's BasePort for a restart on the same
// addresses) or on a free block when base is 0. It is stopped when the test ends; a failing test
// gets its log tail.
func (e *teeEnv) secondProxy(t *testing.T, ctx context.Context, base int, extra ...string) *harness.Proxy {
	t.Helper()
	o := harness.ProxyOptions{Bin: suite.bin, Upstream: e.kafka.ListenAddrs(), Brokers: numBrokers,
		ExtraArgs: append([]string{"--config", filepath.Join(e.dir, "proxy.yaml")}, extra...)}
	var next *harness.Proxy
	var err error
	if base == 0 {
		next, err = harness.StartProxy(ctx, o)
	} else {
		next, err = harness.StartProxyAt(ctx, o, base)
	}
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, "second proxy", next)
	return next
}
