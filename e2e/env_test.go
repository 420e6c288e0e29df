package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

const (
	numBrokers    = 3
	numPartitions = 6
)

// env is one test's cluster: kfake with 3 brokers and the proxy in front of it.
type env struct {
	kafka *kfake.Cluster
	proxy *harness.Proxy // nil in direct mode
	// bootstrap is what clients are given.
	bootstrap string
	// advertised maps node id → the address clients must learn for that node.
	advertised map[int32]string
	// upstream holds kfake's own addresses, which no client may ever learn through the proxy.
	upstream map[string]bool
}

// envOptions adjusts newEnvWith.
type envOptions struct {
	topics []string
	// proxyArgs are extra proxy command-line arguments.
	proxyArgs []string
	// nodeSlots is how many per-broker listener ports to reserve (node ids 0..nodeSlots-1);
	// tests that add brokers need more than numBrokers.
	nodeSlots int
	// kafka are extra kfake options, e.g. SASL.
	kafka []kfake.Opt
}

// newEnv starts kfake with topics seeded (6 partitions each) and the proxy in front of it. Both
// are stopped when the test ends; a failing test gets the proxy's log tail.
func newEnv(t *testing.T, topics ...string) *env {
	t.Helper()
	return newEnvWith(t, envOptions{topics: topics})
}

// newEnvWith is newEnv with options.
func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.nodeSlots < numBrokers {
		o.nodeSlots = numBrokers
	}
	c, err := harness.StartKafka(harness.KafkaOptions{Brokers: numBrokers, Partitions: numPartitions, Topics: o.topics, Extra: o.kafka})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := &env{kafka: c, advertised: map[int32]string{}, upstream: map[string]bool{}}
	for i, a := range c.ListenAddrs() {
		e.upstream[a] = true
		if suite.direct {
			e.advertised[int32(i)] = a
		}
	}
	if suite.direct {
		e.bootstrap = c.ListenAddrs()[0]
		return e
	}
	if suite.buildErr != nil {
		t.Fatalf("proxy binary: %v", suite.buildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := harness.StartProxy(ctx, harness.ProxyOptions{
		Bin:       suite.bin,
		Upstream:  c.ListenAddrs(),
		Brokers:   o.nodeSlots,
		LogLevel:  os.Getenv("OKP_E2E_LOG_LEVEL"),
		ExtraArgs: o.proxyArgs,
	})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, "proxy", p)
	e.proxy = p
	e.bootstrap = p.Addr
	for i := int32(0); i < numBrokers; i++ {
		e.advertised[i] = p.BrokerAddr(i)
	}
	return e
}

// checkLearned fails unless every address in learned (node id → host:port) is the one the proxy
// must advertise for that node, and no kfake address leaked. Node id -1 marks an address whose
// node is unknown (e.g. parsed from a log); it must still be a proxy address.
func (e *env) checkLearned(t *testing.T, client string, learned map[int32][]string) {
	t.Helper()
	for _, p := range e.addrProblems(client, learned) {
		t.Error(p)
	}
}

// addrProblems lists what checkLearned complains about.
func (e *env) addrProblems(client string, learned map[int32][]string) []string {
	if len(learned) == 0 {
		return []string{client + ": learned no broker addresses"}
	}
	allowed := map[string]bool{e.bootstrap: true}
	for _, a := range e.advertised {
		allowed[a] = true
	}
	var out []string
	for node, addrs := range learned {
		for _, a := range addrs {
			if !suite.direct && e.upstream[a] {
				out = append(out, fmt.Sprintf("%s learned upstream broker address %s (node %d): the proxy leaked it", client, a, node))
				continue
			}
			if node < 0 {
				if !allowed[a] {
					out = append(out, fmt.Sprintf("%s learned address %s, which is not a proxy address %v", client, a, sortedKeys(allowed)))
				}
				continue
			}
			if want, ok := e.advertised[node]; !ok || a != want {
				out = append(out, fmt.Sprintf("%s learned node %d at %s, want %s", client, node, a, want))
			}
		}
	}
	return out
}

// checkNodes is checkLearned for a plain node id → address list, also requiring every node of
// the cluster.
func (e *env) checkNodes(t *testing.T, client string, nodes map[int32]string) {
	t.Helper()
	e.checkNodesN(t, client, nodes, numBrokers)
}

// checkNodesN is checkNodes for a cluster of n brokers.
func (e *env) checkNodesN(t *testing.T, client string, nodes map[int32]string, n int) {
	t.Helper()
	learned := map[int32][]string{}
	for id, a := range nodes {
		learned[id] = []string{a}
	}
	e.checkLearned(t, client, learned)
	if len(nodes) != n {
		t.Errorf("%s learned %d brokers %v, want %d", client, len(nodes), nodes, n)
	}
}

// leaderAddr is kfake's own address of the leader of topic/p, for reading stored batches.
func (e *env) leaderAddr(t *testing.T, topic string, p int32) string {
	t.Helper()
	node := e.kafka.LeaderFor(topic, p)
	addrs := e.kafka.ListenAddrs()
	if node < 0 || int(node) >= len(addrs) {
		t.Fatalf("leader of %s/%d: node %d not among %v", topic, p, node, addrs)
	}
	return addrs[node]
}

// storedBatches returns every batch kfake stored for topic, over all partitions.
func (e *env) storedBatches(t *testing.T, topic string) []kmsg.RecordBatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var all []kmsg.RecordBatch
	for p := int32(0); p < numPartitions; p++ {
		bs, err := harness.StoredBatches(ctx, e.leaderAddr(t, topic, p), topic, p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, bs...)
	}
	return all
}

// requireTool skips the test when a system tool is missing, unless CI is set: CI installs every
// tool (make deps), so there a missing one is a failure.
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("%s not found (%s)", name, install))
	}
	return p
}

// requirePython checks that Debian's python3 can import module.
func requirePython(t *testing.T, module, pkg string) {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		missing(t, py+" not found (apt-get install python3)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := harness.Run(ctx, 20*time.Second, nil, nil, py, "-c", "import "+module); err != nil {
		missing(t, fmt.Sprintf("%s cannot import %s (apt-get install %s): %v", py, module, pkg, err))
	}
}

func missing(t *testing.T, why string) {
	t.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("CI is set and %s", why)
	}
	t.Skipf("skipping: %s", why)
}

func checkSame(t *testing.T, what string, want, got []string) {
	t.Helper()
	if ok, diff := harness.SameMultiset(want, got); !ok {
		t.Fatalf("%s: consumed records differ from produced: %s", what, diff)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stopAtEnd stops the proxy process p when the test ends; a failing test gets its log tail.
func stopAtEnd(t *testing.T, name string, p *harness.Proxy) {
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s log tail:\n%s", name, tailLines(p.Logs(), 60))
		}
	})
}
