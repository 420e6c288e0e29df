package proxy

import (
	"runtime"
	"testing"
)

// Buffers come in power-of-two classes that hold the size asked for; only such buffers return to
// the pool, and a returned buffer is handed out again empty.
func TestFramePoolClasses(t *testing.T) {
	var fp framePool
	for _, tc := range []struct{ n, want int }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {32 << 10, 32 << 10}, {32<<10 + 1, 64 << 10}, {1 << 20, 1 << 20},
		{1<<20 + 1, 2 << 20}, {maxPooledFrame, maxPooledFrame}, {5 << 20, 5 << 20}, {100 << 20, 100 << 20},
	} {
		if b := fp.get(tc.n); len(b) != 0 || cap(b) != tc.want {
			t.Errorf("get(%d): len %d cap %d, want 0 and %d", tc.n, len(b), cap(b), tc.want)
		}
	}
	b := append(fp.get(100<<10), "abc"...)
	fp.put(b)
	fp.put(make([]byte, 0, 100<<10))          // not a class size: dropped
	fp.put(make([]byte, 0, 2*maxPooledFrame)) // above the classes: dropped
	for range 100 {                           // sync.Pool may drop entries, so look a few times
		if r := fp.get(128 << 10); cap(r) == cap(b) && &r[:1][0] == &b[0] {
			if len(r) != 0 {
				t.Fatalf("reused buffer has length %d", len(r))
			}
			return
		}
	}
	t.Log("pool dropped the buffer (allowed by sync.Pool)")
}

// Large buffers are kept across garbage collections (sync.Pool drops its contents at each), up to
// keptMaxBytes in all; beyond that they go to the sync.Pool.
func TestFramePoolKeepsLargeBuffersAcrossGC(t *testing.T) {
	var fp framePool
	b := fp.get(1 << 20)
	fp.put(b)
	runtime.GC()
	runtime.GC()
	if r := fp.get(1 << 20); &r[:1][0] != &b[:1][0] {
		t.Fatal("a 1 MiB buffer did not survive two collections")
	}
	var held [][]byte
	for range keptMaxBytes/(4<<20) + 2 {
		held = append(held, fp.get(4<<20))
	}
	for _, h := range held {
		fp.put(h)
	}
	if fp.keptBytes > keptMaxBytes {
		t.Fatalf("kept %d bytes, bound %d", fp.keptBytes, keptMaxBytes)
	}
	if fp.keptBytes != keptMaxBytes {
		t.Fatalf("kept %d bytes, want the bound %d filled", fp.keptBytes, keptMaxBytes)
	}
	small := fp.get(1 << 10)
	fp.put(small)
	if fp.keptBytes != keptMaxBytes {
		t.Fatal("a small buffer went to the kept list")
	}
}
