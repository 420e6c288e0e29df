package openmldbtest

import (
	"fmt"
	"testing"
)

// A key's entries read back in ascending ts whatever order the Puts came in, rows of equal ts
// in the order they were stored; reads in between see the list sorted and later Puts keep it so.
func TestKeyListReadsInTimestampOrder(t *testing.T) {
	var l keyList
	put := func(ts uint64, name string) { l.insert(entry{ts: ts, row: []byte(name)}) }
	read := func() string {
		s := ""
		for _, e := range l.ordered() {
			s += fmt.Sprintf("%d:%s ", e.ts, e.row)
		}
		return s
	}
	put(5, "a")
	put(7, "b")
	put(5, "c") // behind an older ts: equal timestamps stay in insertion order
	put(3, "d")
	put(7, "e")
	if got, want := read(), "3:d 5:a 5:c 7:b 7:e "; got != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
	put(6, "f")
	put(5, "g")
	if got, want := read(), "3:d 5:a 5:c 5:g 6:f 7:b 7:e "; got != want {
		t.Fatalf("entries after more Puts %q, want %q", got, want)
	}
	if e := newest(l.ordered(), 0); string(e.row) != "e" {
		t.Fatalf("newest entry %q, want e", e.row)
	}
}
