package openmldb

import (
	"runtime"
	"strconv"
	"testing"
	"time"
	"weak"
)

// BenchmarkTieGate is the gate's cost per row of a 1,000-row Write of distinct keys on a table
// with a TS column (no row waits): building the entries, entering and leaving.
func BenchmarkTieGate(b *testing.B) {
	g := newTieGate()
	tb := stampTable(true)
	tb.tsOf = []int{1}
	ops, keys := stampOps(1000, func(i int) string { return "user-" + strconv.Itoa(i) })
	rows := make([]Row, len(ops))
	for i := range rows {
		rows[i] = Row{Str("user-" + strconv.Itoa(i)), Int(1700000000000)}
	}
	all := make([]int, len(ops))
	for i := range all {
		all[i] = i
	}
	w := &writeJob{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		es := g.entries(w, tb, rows, ops, keys)
		if ready := g.enter(es, all, make([]int, 0, len(all))); len(ready) != len(all) {
			b.Fatalf("%d of %d ready", len(ready), len(all))
		}
		for _, e := range es {
			g.leave(e, nil)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ops)), "ns/row")
}

// An expired Put's entry that leaves by its late, before its timer, must not stay reachable
// through the timer: the timer holds the entry and so the whole Write (rows, callbacks) for an
// RPC timeout.
func TestEntryThatLeftDoesNotKeepItsWriteReachable(t *testing.T) {
	g := newTieGate()
	w := &writeJob{errs: make([]error, 1<<16)}
	wp := weak.Make(w)
	e := &tieEntry{job: w, keys: []uint64{1}, next: make([]*tieEntry, 1)}
	if ready := g.enter([]*tieEntry{e}, []int{0}, nil); len(ready) != 1 {
		t.Fatal("a lone entry must be ready")
	}
	g.leaveBy(e, time.Hour, func(e *tieEntry) { g.leave(e, nil) }) // it expired
	g.leave(e, nil)                                                // its answer came after all
	w, e = nil, nil
	runtime.GC()
	if wp.Value() != nil {
		t.Fatal("a Write whose Put is over stays reachable until its expiry timer fires")
	}
	if len(g.tails) != 0 {
		t.Fatalf("%d tie queues left", len(g.tails))
	}
}
