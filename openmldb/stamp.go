package openmldb

import (
	"hash/maphash"
	"sync"
)

// maxStampLead bounds how far ahead of the wall clock a Put time may be moved (ms).
const maxStampLead = 1000

// putStamps gives Put times (ms) that increase strictly per key of every index without a TS
// column, where the Put time is the row's timestamp. OpenMLDB lists the last inserted of a key's
// equal-timestamp rows as the newest, and its RPC layer may apply pipelined Puts in another order
// than they were sent (brpc runs the requests of one socket read concurrently), so rows of one
// key stamped alike could be stored newest-first in any order. Strictly increasing stamps make
// the order a timestamp order no server can change. A key written faster than one row per
// millisecond runs ahead of the clock, by at most maxStampLead; beyond that its rows tie again.
type putStamps struct {
	seed  maphash.Seed
	mu    sync.Mutex
	last  map[uint64]int64 // key hash → the last stamp given to it
	prune int              // prune entries the clock has passed once last grows beyond this
	// clock is the latest clock reading any Write stamped with: a Write read the clock before
	// encoding its rows, so it may stamp after a later reading (or after the clock stepped
	// back), and its older reading must not undercut what later ones did (prune, cap).
	clock int64
}

// newPutStamps returns stamps that are never below floor (ms). A client opens with floor =
// its start + maxStampLead + 1: above every stamp a previous process on this clock can have
// given once it had run a second (at most maxStampLead ahead of its clock), so a proxy restarted
// at once does not list a hot key's new rows below the ones stored just before. In a client's
// first second stamps run up to two seconds ahead of the clock.
func newPutStamps(floor int64) *putStamps {
	return &putStamps{seed: maphash.MakeSeed(), last: map[uint64]int64{}, prune: 4096, clock: floor}
}

// keyHash names (table, partition, index, key); a collision only moves a stamp needlessly.
func (s *putStamps) keyHash(tid, pid, idx uint32, key []byte) uint64 {
	return maphash.Bytes(s.seed, key) ^ (uint64(tid)<<32|uint64(pid)<<8|uint64(idx))*0x9e3779b97f4a7c15
}

// stamp sets the Put time of each op: now, or for a row with keys on indexes without a TS column
// just after the last stamp any of those keys got (all ops of one row share the row's stamp, as
// OpenMLDB's SDK sends them). ops of one row are adjacent.
func (s *putStamps) stamp(t *Table, ops []putOp, keys []byte, now int64) {
	untimed := false
	for i, ix := range t.Indexes {
		untimed = untimed || (ix.TS == "" && t.keyCols[i] != nil)
	}
	if !untimed {
		for i := range ops {
			ops[i].time = now
		}
		return
	}
	var hashBuf [8]uint64
	s.mu.Lock()
	defer s.mu.Unlock()
	now = max(now, s.clock)
	s.clock = now
	for i := 0; i < len(ops); {
		end := i + 1
		for end < len(ops) && ops[end].row == ops[i].row {
			end++
		}
		st := now
		hashes := hashBuf[:0]
		for _, op := range ops[i:end] {
			for _, d := range op.dims {
				if t.Indexes[d.idx].TS == "" {
					h := s.keyHash(t.TID, d.pid, d.idx, keys[d.start:d.end])
					hashes = append(hashes, h)
					if last, ok := s.last[h]; ok && last+1 > st {
						st = last + 1
					}
				}
			}
		}
		st = min(st, now+maxStampLead)
		for j := i; j < end; j++ {
			ops[j].time = st
		}
		for _, h := range hashes {
			s.last[h] = st
		}
		i = end
	}
	if len(s.last) > s.prune {
		for h, last := range s.last {
			if last < now { // the clock has passed it: it cannot move a stamp any more
				delete(s.last, h)
			}
		}
		s.prune = max(4096, 2*len(s.last))
	}
}
