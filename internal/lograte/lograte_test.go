package lograte

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(time.Second)
	l.now = func() time.Time { return now }
	allow := func(key string) (bool, int) { return l.Allow(key) }

	if ok, n := allow("a"); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for i := 0; i < 5; i++ {
		now = now.Add(100 * time.Millisecond)
		if ok, _ := allow("a"); ok {
			t.Fatalf("line %d within the second let through", i)
		}
	}
	if ok, _ := allow("b"); !ok {
		t.Fatal("another key is limited by the first")
	}
	now = now.Add(500 * time.Millisecond) // 1.0 s after the first line of "a"
	if ok, n := allow("a"); !ok || n != 5 {
		t.Fatalf("after the interval: %v, suppressed %d, want true, 5", ok, n)
	}
	if ok, _ := allow("a"); ok {
		t.Fatal("second line right after an allowed one let through")
	}
	now = now.Add(time.Second)
	if ok, n := allow("a"); !ok || n != 1 {
		t.Fatalf("next interval: %v, suppressed %d, want true, 1", ok, n)
	}
}

// A burst limiter lets its first lines of an interval through, then suppresses, and the first
// line of the next interval counts what was left out.
func TestBurstLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewBurst(time.Second, 3)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, n := l.Allow("c"); !ok || n != 0 {
			t.Fatalf("line %d of the burst: %v %d", i, ok, n)
		}
		now = now.Add(10 * time.Millisecond)
	}
	for i := range 7 {
		if ok, _ := l.Allow("c"); ok {
			t.Fatalf("line %d past the burst let through", i)
		}
	}
	if ok, _ := l.Allow("d"); !ok {
		t.Fatal("another key is limited by the first")
	}
	now = now.Add(time.Second)
	if ok, n := l.Allow("c"); !ok || n != 7 {
		t.Fatalf("next interval: %v, suppressed %d, want true, 7", ok, n)
	}
	if ok, n := l.Allow("c"); !ok || n != 0 {
		t.Fatalf("second line of the next interval: %v, suppressed %d, want true, 0", ok, n)
	}
}

func TestLimiterForgetsOldKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(time.Hour)
	l.now = func() time.Time { return now }
	for i := 0; i < maxKeys; i++ {
		now = now.Add(time.Millisecond)
		l.Allow(strconv.Itoa(i))
	}
	now = now.Add(time.Millisecond)
	l.Allow("new") // the oldest half goes
	if len(l.keys) > maxKeys/2+1 {
		t.Fatalf("%d keys kept, want at most %d", len(l.keys), maxKeys/2+1)
	}
	if ok, _ := l.Allow("0"); !ok {
		t.Fatal("a forgotten key is still limited")
	}
	if ok, _ := l.Allow(strconv.Itoa(maxKeys - 1)); ok {
		t.Fatal("a recent key was forgotten")
	}
}
