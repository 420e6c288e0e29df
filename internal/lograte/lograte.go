// Package lograte keeps a log line that can repeat once per request from flooding the log: per
// key (a table and a reason, say), at most a few lines per interval go out (one, unless made with
// NewBurst), and the next one out says how many were left out before it. Metrics still count every event; the log shows that it
// happens and what it looks like.
package lograte

import (
	"slices"
	"sync"
	"time"
)

// Limiter decides, per key, whether a line may be logged now.
type Limiter struct {
	every time.Duration
	burst int
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*state
}

type state struct {
	last       time.Time // start of the key's current interval: its first line out in it
	sent       int       // lines out in the current interval
	suppressed int
}

// maxKeys bounds the keys remembered; past it the oldest half is forgotten (those keys then log
// their next line at once).
const maxKeys = 4096

// New returns a Limiter letting one line per key through every interval.
func New(every time.Duration) *Limiter { return NewBurst(every, 1) }

// NewBurst returns a Limiter letting up to burst lines per key through every interval: for lines
// that are each worth reading at ordinary rates (a client connecting) and only flood in a storm.
func NewBurst(every time.Duration, burst int) *Limiter {
	return &Limiter{every: every, burst: max(burst, 1), now: time.Now, keys: map[string]*state{}}
}

// Allow reports whether a line for key may be logged now, and how many lines for key were
// suppressed since the last one that was (to be logged with it).
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[key]
	if s == nil {
		if len(l.keys) >= maxKeys {
			l.forgetOldest()
		}
		s = &state{}
		l.keys[key] = s
	} else if now.Sub(s.last) < l.every {
		if s.sent >= l.burst {
			s.suppressed++
			return false, 0
		}
		s.sent++
		suppressed, s.suppressed = s.suppressed, 0
		return true, suppressed
	}
	s.last, s.sent, suppressed, s.suppressed = now, 1, s.suppressed, 0
	return true, suppressed
}

// forgetOldest drops the half of the keys that logged longest ago; mu is held. It runs once per
// maxKeys/2 new keys, so sorting is cheap enough.
func (l *Limiter) forgetOldest() {
	times := make([]time.Time, 0, len(l.keys))
	for _, s := range l.keys {
		times = append(times, s.last)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	cut := times[len(times)/2]
	for k, s := range l.keys {
		if !s.last.After(cut) {
			delete(l.keys, k)
		}
	}
}
