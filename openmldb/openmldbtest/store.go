package openmldbtest

import (
	"bytes"
	"cmp"
	"slices"
	"sort"
	"sync"
)

// entry is one stored version of a row under one index key.
type entry struct {
	ts  uint64
	row []byte
}

// keyList holds a key's entries; readers see them in ascending ts, equal timestamps in insertion
// order, and walk them backwards (newest first) as OpenMLDB's time-ordered lists do. Puts
// append: rows of concurrent writes come with timestamps slightly out of order, and inserting each
// in place cost a copy of the list's tail (all the rows of a table with one key, millions in a
// benchmark). The list is sorted, stably, when next read instead.
type keyList struct {
	entries []entry
	// unsorted: an entry was appended with a ts below its predecessor's. Writers hold the
	// partition's lock; readers hold it shared and sort under sortMu.
	unsorted bool
	sortMu   sync.Mutex
}

func (l *keyList) insert(e entry) {
	if n := len(l.entries); n > 0 && l.entries[n-1].ts > e.ts {
		l.unsorted = true
	}
	l.entries = append(l.entries, e)
}

// ordered returns the entries in ascending ts, equal timestamps in insertion order. The caller
// holds the partition's lock, shared or not.
func (l *keyList) ordered() []entry {
	l.sortMu.Lock()
	defer l.sortMu.Unlock()
	if l.unsorted {
		slices.SortStableFunc(l.entries, func(a, b entry) int { return cmp.Compare(a.ts, b.ts) })
		l.unsorted = false
	}
	return l.entries
}

// newest returns the i-th of ordered entries es, newest first.
func newest(es []entry, i int) entry { return es[len(es)-1-i] }

// contains reports whether a byte-identical row is stored, with the same ts unless anyTS.
func (l *keyList) contains(row []byte, ts uint64, anyTS bool) bool {
	for _, e := range l.entries {
		if (anyTS || e.ts == ts) && bytes.Equal(e.row, row) {
			return true
		}
	}
	return false
}

// indexStore is one index of one partition replica.
type indexStore struct {
	keys   map[string]*keyList
	sorted []string // key order for Traverse; rebuilt lazily
	dirty  bool
}

func (s *indexStore) sortedKeys() []string {
	if s.dirty {
		sort.Strings(s.sorted)
		s.dirty = false
	}
	return s.sorted
}

// dimWrite is one index write of a Put.
type dimWrite struct {
	idx   int
	key   string
	ts    uint64
	anyTS bool // index has no TS column: put_if_absent ignores ts
}

// partition is one replica of one table partition on one tablet.
type partition struct {
	replMu   sync.Mutex // held by the leader's Put across its write and replication
	mu       sync.RWMutex
	indexes  []*indexStore // nil for deleted indexes
	firstIdx int           // first non-deleted index: its insertion order feeds Rows
	rows     [][]byte      // rows written through firstIdx, in insertion order
}

func newPartition(indexes []index) *partition {
	p := &partition{indexes: make([]*indexStore, len(indexes)), firstIdx: -1}
	for i, ix := range indexes {
		if ix.deleted {
			continue
		}
		if p.firstIdx < 0 {
			p.firstIdx = i
		}
		p.indexes[i] = &indexStore{keys: map[string]*keyList{}}
	}
	return p
}

// put stores row under every dimension. With ifAbsent it stores nothing and returns false when
// any dimension already holds a byte-identical row with the same ts (any ts for no-TS indexes).
func (p *partition) put(dims []dimWrite, row []byte, ifAbsent bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ifAbsent {
		for _, d := range dims {
			if l := p.indexes[d.idx].keys[d.key]; l != nil && l.contains(row, d.ts, d.anyTS) {
				return false
			}
		}
	}
	for _, d := range dims {
		s := p.indexes[d.idx]
		l := s.keys[d.key]
		if l == nil {
			l = &keyList{}
			s.keys[d.key] = l
			s.sorted = append(s.sorted, d.key)
			s.dirty = true
		}
		l.insert(entry{ts: d.ts, row: row})
		if d.idx == p.firstIdx {
			p.rows = append(p.rows, row)
		}
	}
	return true
}

// clone deep-copies the index structure (rows are immutable and shared), used when a leader moves
// to a tablet that held no replica.
func (p *partition) clone() *partition {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c := &partition{indexes: make([]*indexStore, len(p.indexes)), firstIdx: p.firstIdx,
		rows: append([][]byte(nil), p.rows...)}
	for i, s := range p.indexes {
		if s == nil {
			continue
		}
		cs := &indexStore{keys: make(map[string]*keyList, len(s.keys)), sorted: append([]string(nil), s.sorted...), dirty: s.dirty}
		for k, l := range s.keys {
			// Sorted first (under the list's own lock): a reader may be sorting it right now.
			cs.keys[k] = &keyList{entries: append([]entry(nil), l.ordered()...)}
		}
		c.indexes[i] = cs
	}
	return c
}
