package tee

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Series of OpenMLDB endpoints with no RPC for an hour are dropped when a new endpoint appears;
// endpoints called meanwhile stay.
func TestIdleEndpointSeriesAreDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewRPCMetrics(reg)
	now := time.Unix(1_000_000, 0)
	m.now = func() time.Time { return now }
	m.Observe("old:10921", time.Millisecond, nil)
	m.Observe("busy:10921", time.Millisecond, errors.New("refused"))
	for range 2 { // each new endpoint sweeps; the second sweep finds old idle since the first
		now = now.Add(40 * time.Minute)
		m.Observe("busy:10921", time.Millisecond, nil)
		m.Observe("new"+now.Format("1504")+":10921", time.Millisecond, nil)
	}
	now = now.Add(40 * time.Minute)
	m.Observe("busy:10921", time.Millisecond, nil)
	m.Observe("last:10921", time.Millisecond, nil)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "endpoint" {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	if seen["old:10921"] {
		t.Errorf("an endpoint without an RPC for two hours is still exported: %v", seen)
	}
	if !seen["busy:10921"] || !seen["last:10921"] {
		t.Errorf("endpoints in use were dropped: %v", seen)
	}
}
