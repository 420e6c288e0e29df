package proxy

import (
	"math/bits"
	"sync"
)

// Intercepted request frames (gathered large ones, and copies of small ones out of gnet's buffer)
// come from a pool of buffers in power-of-two sizes. A fresh 1 MB buffer per request costs zeroing
// it and a garbage collection every few hundred requests; at 10,000 small requests a second the
// copies were over a quarter of the proxy's allocations and so of its collections. Buffers above
// maxPooledFrame are allocated as they come and left to the collector.
const (
	minPooledShift = 9  // 512 B: about the smallest Produce request
	maxPooledShift = 22 // 4 MiB: gatherInitial
	maxPooledFrame = 1 << maxPooledShift
)

// Large buffers (keptMinShift and up) are also kept in a small free list that, unlike sync.Pool,
// survives garbage collections: at full speed the proxy collects every few hundred milliseconds,
// each collection emptied the pool, and a fifth of the tee's allocated bytes were fresh (and
// zeroed) 1–4 MiB frame buffers. The list holds at most keptMaxBytes.
const (
	keptMinShift = 16       // 64 KiB
	keptMaxBytes = 16 << 20 // per proxy
)

// framePool holds reusable frame buffers by size class.
type framePool struct {
	classes [maxPooledShift - minPooledShift + 1]sync.Pool

	mu        sync.Mutex
	kept      [maxPooledShift - keptMinShift + 1][][]byte
	keptBytes int
}

// class is the size class whose buffers hold n bytes; n must be at most maxPooledFrame.
func frameClass(n int) int {
	if n <= 1<<minPooledShift {
		return 0
	}
	shift := bits.Len(uint(n - 1))
	return max(shift, minPooledShift) - minPooledShift
}

// get returns an empty buffer with room for n bytes; above maxPooledFrame a plain allocation
// (which put then drops).
func (fp *framePool) get(n int) []byte {
	if n > maxPooledFrame {
		return make([]byte, 0, n)
	}
	c := frameClass(n)
	if b := fp.takeKept(c); b != nil {
		return b
	}
	if b, ok := fp.classes[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<(c+minPooledShift))
}

// takeKept returns a kept buffer of class c, or nil.
func (fp *framePool) takeKept(c int) []byte {
	k := c + minPooledShift - keptMinShift
	if k < 0 {
		return nil
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	list := fp.kept[k]
	if len(list) == 0 {
		return nil
	}
	b := list[len(list)-1]
	fp.kept[k] = list[:len(list)-1]
	fp.keptBytes -= cap(b)
	return b[:0]
}

// keep adds b, of class c, to the free list if it has room.
func (fp *framePool) keep(c int, b []byte) bool {
	k := c + minPooledShift - keptMinShift
	if k < 0 {
		return false
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.keptBytes+cap(b) > keptMaxBytes {
		return false
	}
	fp.kept[k] = append(fp.kept[k], b[:0])
	fp.keptBytes += cap(b)
	return true
}

// put returns a buffer from get once nothing refers to it any more.
func (fp *framePool) put(b []byte) {
	n := cap(b)
	if n < 1<<minPooledShift || n > maxPooledFrame || n&(n-1) != 0 {
		return // not one of ours
	}
	b = b[:0]
	c := frameClass(n)
	if fp.keep(c, b) {
		return
	}
	fp.classes[c].Put(&b)
}
