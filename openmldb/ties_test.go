package openmldb

import (
	"strconv"
	"testing"
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
