package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// labelValues lists the values of label over the series of the metric called name in reg.
func labelValues(t *testing.T, reg *prometheus.Registry, name, label string) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// Series of broker addresses unused for an hour, with no connection open, are dropped when a
// new address appears; addresses with an open connection, or used lately, stay.
func TestIdleUpstreamSeriesAreDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	now := time.Unix(1_000_000, 0)
	m.now = func() time.Time { return now }
	opened := func(addr string) { m.upstreamEvent(addr, func(u *upstreamSeries) { u.open++; u.conns.Inc() }) }
	closed := func(addr string) { m.upstreamEvent(addr, func(u *upstreamSeries) { u.open--; u.conns.Dec() }) }

	opened("gone:9092")
	closed("gone:9092")
	opened("held:9092") // stays open
	m.dialFailed("refused:9092")
	now = now.Add(50 * time.Minute)
	opened("recent:9092")
	closed("recent:9092")
	now = now.Add(20 * time.Minute) // gone and refused: 70 min idle; recent: 20 min
	opened("new:9092")

	got := labelValues(t, reg, "okp_upstream_connections_total", "broker")
	for addr, want := range map[string]bool{"gone:9092": false, "refused:9092": false, "held:9092": true, "recent:9092": true, "new:9092": true} {
		if got[addr] != want {
			t.Errorf("series of %s present: %v, want %v (series: %v)", addr, got[addr], want, got)
		}
	}
	if errs := labelValues(t, reg, "okp_upstream_errors_total", "broker"); errs["refused:9092"] {
		t.Error("the dial errors of an address idle for an hour are still exported")
	}
}
