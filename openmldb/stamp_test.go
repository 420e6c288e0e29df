package openmldb

import (
	"strconv"
	"testing"
	"time"
)

// stampTable is a table with one index on c (no TS column) and one on c with TS column ts.
func stampTable(tsToo bool) *Table {
	t := &Table{TID: 7, PartitionCount: 1, Indexes: []Index{{Name: "k", Keys: []string{"c"}}}, keyCols: [][]int{{0}}}
	if tsToo {
		t.Indexes[0].TS = "ts"
	}
	return t
}

// stampOps builds one op per row, row i keyed keyOf(i).
func stampOps(n int, keyOf func(int) string) ([]putOp, []byte) {
	var keys []byte
	ops := make([]putOp, n)
	for i := range ops {
		start := len(keys)
		keys = append(keys, keyOf(i)...)
		ops[i] = putOp{row: i, dims: []putDim{{idx: 0, pid: 0, start: start, end: len(keys)}}}
	}
	return ops, keys
}

// A key's rows get strictly increasing stamps within a Write and across Writes, up to the lead
// bound; other keys start at the clock; tables whose indexes all have a TS column get the clock.
func TestPutStampsIncreasePerKey(t *testing.T) {
	s := newPutStamps(0)
	now := time.Now().UnixMilli()
	ops, keys := stampOps(6, func(i int) string { return "k" + strconv.Itoa(i%2) })
	s.stamp(stampTable(false), ops, keys, now)
	for i, want := range []int64{now, now, now + 1, now + 1, now + 2, now + 2} {
		if ops[i].time != want {
			t.Fatalf("row %d stamped %d, want %d", i, ops[i].time-now, want-now)
		}
	}
	more, keys := stampOps(1, func(int) string { return "k0" })
	s.stamp(stampTable(false), more, keys, now) // a later Write within the same millisecond
	if more[0].time != now+3 {
		t.Fatalf("next Write's row of k0 stamped now+%d, want now+3", more[0].time-now)
	}
	hot, keys := stampOps(maxStampLead+10, func(int) string { return "hot" })
	s.stamp(stampTable(false), hot, keys, now)
	if last := hot[len(hot)-1].time; last != now+maxStampLead {
		t.Fatalf("a hot key's stamp ran %d ms ahead, want at most %d", last-now, maxStampLead)
	}
	timed, keys := stampOps(3, func(int) string { return "k0" })
	s.stamp(stampTable(true), timed, keys, now)
	for i := range timed {
		if timed[i].time != now {
			t.Fatalf("TS-column table: row %d stamped now+%d, want the clock", i, timed[i].time-now)
		}
	}
}

// BenchmarkPutStamps is the stamping cost per row of a 1,000-row Write of distinct keys.
func BenchmarkPutStamps(b *testing.B) {
	s := newPutStamps(0)
	tb := stampTable(false)
	ops, keys := stampOps(1000, func(i int) string { return "user-" + strconv.Itoa(i) })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.stamp(tb, ops, keys, time.Now().UnixMilli())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ops)), "ns/row")
}

// A Write stamps with the clock it read before encoding its rows, which can be older than one a
// Write of other keys already stamped with (or the clock stepped back): a key's next row must
// still come after its previous one, whether a prune ran in between or the key is at the lead
// bound.
func TestPutStampsDoNotGoBackWithAnOlderClock(t *testing.T) {
	tb := stampTable(false)
	one := func(s *putStamps, key string, now int64) int64 {
		ops, keys := stampOps(1, func(int) string { return key })
		s.stamp(tb, ops, keys, now)
		return ops[0].time
	}
	s := newPutStamps(0)
	first := one(s, "k", 100)
	many, keys := stampOps(4097, func(i int) string { return "other-" + strconv.Itoa(i) })
	s.stamp(tb, many, keys, 101) // prunes entries the clock (101) has passed: k's among them
	if next := one(s, "k", 100); next <= first {
		t.Fatalf("after a prune by a later clock, k's next row stamped %d, not after %d", next, first)
	}
	s = newPutStamps(0)
	first = one(s, "k", 10_000)
	if next := one(s, "k", 9_500); next <= first {
		t.Fatalf("after the clock stepped back, k's next row stamped %d, not after %d", next, first)
	}
	s = newPutStamps(0)
	hot, keys := stampOps(maxStampLead+1, func(int) string { return "k" })
	s.stamp(tb, hot, keys, 100)
	if next, prev := one(s, "k", 99), hot[len(hot)-1].time; next < prev {
		t.Fatalf("at the lead bound, an older clock stamped k's next row %d, below the previous %d", next, prev)
	}
}
