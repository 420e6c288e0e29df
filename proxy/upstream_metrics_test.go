package proxy

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// A client that closes while its broker connection is being dialed: upOpened refuses the broker
// connection (returns gnet.Close) without counting it open, but gnet still calls OnClose, and
// upClosed uncounts it. okp_upstream_connections then goes below zero, and the series' open count
// goes below zero too, so the idle sweep may drop a series whose connections are still open.
func TestUpstreamGaugeStaysZeroWhenClientClosesDuringDial(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	reg := prometheus.NewRegistry()
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Metrics: NewMetrics(reg)})
	const n = 600
	for i := range n {
		conn, err := net.DialTimeout("tcp", p.Addr(), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Close at various points of the session's broker dial and enroll.
		time.Sleep(time.Duration(i%40) * 25 * time.Microsecond)
		conn.Close()
	}
	sum := func() (float64, map[string]int) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		opens := map[string]int{}
		for _, mf := range mfs {
			if mf.GetName() == "okp_upstream_connections" {
				for _, m := range mf.GetMetric() {
					s += m.GetGauge().GetValue()
				}
			}
		}
		p.metrics.mu.Lock()
		for a, u := range p.metrics.upSeries {
			opens[a] = u.open
		}
		p.metrics.mu.Unlock()
		return s, opens
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, opens := sum()
		if s == 0 && p.lim.conns.Load() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("all clients gone: okp_upstream_connections sums to %v, open counts %v; want 0", s, opens)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client that connects and closes at once (a TCP health check, a reconnect storm) cancels its
// session's broker dial. That is not a broker failure: it must not count as
// okp_upstream_errors_total{kind="dial"} nor log "closing client: upstream unreachable" (which
// would also use up that line's budget in logConn, hiding a real outage's lines).
func TestClientLeavingDuringDialIsNoBrokerError(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	reg := prometheus.NewRegistry()
	var logs lockedBuffer
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{Metrics: NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const n = 300
	for range n {
		conn, err := net.DialTimeout("tcp", p.Addr(), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.lim.conns.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "okp_upstream_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("healthy broker: okp_upstream_errors_total%v = %v", m.GetLabel(), v)
			}
		}
	}
	if n := strings.Count(logs.String(), "upstream unreachable"); n > 0 {
		t.Errorf("healthy broker: %d \"upstream unreachable\" lines", n)
	}
}

// With kafka.tls the session's broker connection is the TLS bridge's socket pair, whose remote
// address is "@": every broker's okp_upstream_* series must still be labelled with the broker's
// address, not all lumped under broker="@".
func TestUpstreamTLSSeriesNameTheBroker(t *testing.T) {
	k := testpki.New(t)
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "lbl"), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{k.Server}, ClientCAs: k.Pool, ClientAuth: tls.RequireAndVerifyClientCert}))
	reg := prometheus.NewRegistry()
	up := &UpstreamTLS{CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile}
	p, _ := startProxyOpts(t, c.ListenAddrs(), 1, Options{UpstreamTLS: up, Metrics: NewMetrics(reg)})
	ctx := testCtx(t, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	got := labelValues(t, reg, "okp_upstream_connections_total", "broker")
	want := map[string]bool{}
	for _, a := range c.ListenAddrs() {
		want[a] = true
	}
	for b := range got {
		if !want[b] {
			t.Errorf("series labelled broker=%q; brokers are %v", b, c.ListenAddrs())
		}
	}
}
