package admin_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/admin"
)

type fixture struct {
	kafka *kfake.Cluster
	proxy *proxy.Proxy
	addr  string
	admin *admin.Server
}

func start(t *testing.T, pprof bool) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	reg := prometheus.NewRegistry()
	f := &fixture{kafka: kc, addr: "127.0.0.1:" + strconv.Itoa(freeport.BlockT(t, 3))}
	f.proxy, err = proxy.New(proxy.Options{Listen: f.addr, Bootstrap: kc.ListenAddrs(), Logger: log, Metrics: proxy.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.proxy.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.proxy.Close(ctx)
	})
	f.admin, err = admin.Start(admin.Options{Listen: "127.0.0.1:0", Gatherer: reg, Pprof: pprof, Logger: log,
		Checks: []admin.Check{{Name: "kafka", Func: f.proxy.Ready}}, CheckTimeout: 2 * time.Second,
		Live: []admin.Check{{Name: "kafka", Func: func(context.Context) error { return f.proxy.Err() }}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.admin.Close(ctx)
	})
	return f
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// sample returns the value of the first line of a /metrics text starting with prefix.
func sample(body, prefix string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func TestMetricsCountProducedTraffic(t *testing.T) {
	f := start(t, false)
	base := "http://" + f.admin.Addr()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.addr), kgo.DefaultProduceTopic("t1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var produced float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, `okp_requests_total{api="Produce"`) {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			produced += v
		}
	}
	if produced < n {
		t.Errorf("okp_requests_total for Produce = %v, want >= %d\n%s", produced, n, body)
	}
	for _, want := range []string{
		`okp_request_bytes_total{api="Produce"`, `okp_response_bytes_total{api="Produce"`,
		`okp_requests_total{api="Metadata"`, `okp_client_connections_total `, `okp_client_connections `,
		`okp_upstream_connections{broker="`, `okp_upstream_connections_total{broker="`,
		`okp_inflight_requests `, `okp_queued_bytes `,
	} {
		v, ok := sample(body, want)
		if !ok {
			t.Errorf("no sample %s in /metrics", want)
			continue
		}
		if v <= 0 && want != `okp_inflight_requests ` && want != `okp_queued_bytes ` {
			t.Errorf("%s = %v, want > 0", want, v)
		}
	}
	if v, ok := sample(body, `okp_produce_seconds_count{path="plain"}`); !ok || v < n {
		t.Errorf(`okp_produce_seconds_count{path="plain"} = %v (%v), want >= %d`, v, ok, n)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without admin.pprof: %d, want 404", code)
	}
	if code, body := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
}

func TestReadinessFollowsUpstream(t *testing.T) {
	f := start(t, true)
	base := "http://" + f.admin.Addr()
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz with the broker up: %d %q", code, body)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != 200 {
		t.Errorf("/debug/pprof/ with admin.pprof: %d, want 200", code)
	}
	f.kafka.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, base+"/readyz")
		if code == http.StatusServiceUnavailable {
			if !strings.HasPrefix(body, "not ready: kafka: ") || strings.Count(body, "\n") != 1 {
				t.Errorf("/readyz body %q: want one line naming kafka", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after the broker closed", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := get(t, base+"/livez"); code != 200 {
		t.Errorf("/livez after the broker closed: %d, want 200", code)
	}
	_, body := get(t, base+"/metrics")
	var dialErrs float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, `okp_upstream_errors_total{`) && strings.Contains(line, `kind="dial"`) {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			dialErrs += v
		}
	}
	if dialErrs < 1 {
		t.Errorf("okp_upstream_errors_total{kind=\"dial\"} = %v, want the failed probe dials counted\n%s", dialErrs, body)
	}
}

func TestDrainClosesReadiness(t *testing.T) {
	f := start(t, false)
	base := "http://" + f.admin.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.proxy.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	// New connections are refused (closed at once) while draining.
	c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Error("a connection made while draining was not closed")
	}
}

// When the proxy stops serving by itself (its gnet engine ended without Close: every client
// connection and the bootstrap listener are gone), /livez fails as well as /readyz, so the
// orchestrator restarts the process instead of leaving it up and refusing clients.
func TestLivenessFailsWhenTheProxyStopsServing(t *testing.T) {
	f := start(t, false)
	base := "http://" + f.admin.Addr()
	if code, body := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Fatalf("/livez: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gnet.Stop(ctx, f.proxy.EngineAddr()); err != nil { //nolint:staticcheck // the only way to stop it from outside
		t.Fatal(err)
	}
	select {
	case <-f.proxy.Failed():
	case <-ctx.Done():
		t.Fatal("the proxy does not report itself failed")
	}
	if code, body := get(t, base+"/livez"); code != http.StatusServiceUnavailable ||
		!strings.HasPrefix(body, "not live: kafka: gnet engine stopped") || strings.Count(body, "\n") != 1 {
		t.Errorf("/livez after the engine stopped: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "gnet engine stopped") {
		t.Errorf("/readyz after the engine stopped: %d %q", code, body)
	}
}

// Closing the server ends a CPU profile in progress with what it has, instead of waiting out its
// duration (which held a proxy's shutdown for the whole profile).
func TestCloseEndsAProfileInProgress(t *testing.T) {
	f := start(t, true)
	type result struct {
		code int
		body []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + f.admin.Addr() + "/debug/pprof/profile?seconds=60")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{code: resp.StatusCode, body: b, err: err}
	}()
	// The profile is in progress once its handler sleeps.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		if strings.Contains(string(buf[:runtime.Stack(buf, true)]), "net/http/pprof.sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the profile request never reached its handler")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // the profile would take 60 s
	defer cancel()
	if err := f.admin.Close(ctx); err != nil {
		t.Fatalf("close with a profile in progress: %v", err)
	}
	r := <-got
	if r.err != nil || r.code != http.StatusOK || len(r.body) < 2 || r.body[0] != 0x1f || r.body[1] != 0x8b {
		t.Fatalf("profile: status %d, %d bytes, err %v; want 200 and a gzipped profile", r.code, len(r.body), r.err)
	}
}
