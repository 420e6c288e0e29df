package openmldb

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestConcurrentQueuedFramesArriveIntact: writers on several goroutines queue frames of mixed
// sizes (some over the 1 MiB reuse bound) and flush with and without waiting, through small
// socket buffers and a peer reading in random steps, so that full writes, partial writes handed
// to a goroutine and the spare swaps interleave. Every frame must arrive whole and each
// goroutine's frames in its order.
func TestConcurrentQueuedFramesArriveIntact(t *testing.T) {
	c, srv := connectedPair(t, 16<<10)
	if err := srv.SetReadDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}

	const writers, frames = 4, 60
	var ids sync.Mutex
	nextID := int64(0)
	frame := func(g, seq, n int) []byte {
		b := make([]byte, 12+n)
		binary.BigEndian.PutUint32(b, uint32(g))
		binary.BigEndian.PutUint32(b[4:], uint32(seq))
		binary.BigEndian.PutUint32(b[8:], uint32(n))
		for i := range n {
			b[12+i] = byte(g*31 + seq*7 + i)
		}
		return b
	}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for seq := range frames {
				n := r.IntN(200 << 10)
				if r.IntN(10) == 0 {
					n = 1<<20 + r.IntN(1<<20)
				}
				f := frame(g, seq, n)
				ids.Lock()
				nextID++
				id := nextID
				ids.Unlock()
				if !c.enqueue(context.Background(), time.Now().Add(time.Minute), id, func([]byte, error) {},
					func(dst, _ []byte) ([]byte, error) { return append(dst, f...), nil }) {
					t.Errorf("frame %d/%d not queued", g, seq)
					return
				}
				if r.IntN(3) != 0 {
					c.flush(r.IntN(2) == 0)
				}
			}
			c.flush(true)
		}()
	}
	errc := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(srv, 4<<10)
		rnd := rand.New(rand.NewPCG(9, 9))
		seen := make([]int, writers)
		var hdr [12]byte
		for total := 0; total < writers*frames; total++ {
			if rnd.IntN(4) == 0 {
				time.Sleep(time.Duration(rnd.IntN(300)) * time.Microsecond)
			}
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				errc <- err
				return
			}
			g, seq, n := int(binary.BigEndian.Uint32(hdr[:])), int(binary.BigEndian.Uint32(hdr[4:])), int(binary.BigEndian.Uint32(hdr[8:]))
			if g >= writers || seq != seen[g] || n > 2<<20 {
				errc <- fmt.Errorf("frame %d: header g=%d seq=%d n=%d, want seq %d", total, g, seq, n, seen[min(g, writers-1)])
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				errc <- err
				return
			}
			for i := range n {
				if body[i] != byte(g*31+seq*7+i) {
					errc <- fmt.Errorf("frame %d/%d byte %d overwritten", g, seq, i)
					return
				}
			}
			seen[g]++
		}
		errc <- nil
	}()
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
