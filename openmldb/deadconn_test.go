package openmldb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// A connection that died keeps no write buffers, and the pool drops dead connections when it
// dials another address: a tablet that comes back under another address (a Kubernetes pod
// restart with a new IP, a failover to a new host) left its entry, and up to 2 MiB of buffers,
// for the life of the process.
func TestDeadConnectionsOfGoneEndpointsAreReleased(t *testing.T) {
	p := newRPCPool(nil, 200*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.close()
	const endpoints = 12
	payload := make([]byte, 768<<10)
	for range endpoints {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				go func() { _, _ = io.Copy(io.Discard, c) }() // reads everything, answers nothing
			}
		}()
		addr := ln.Addr().String()
		for range 2 { // one call at a time: each frame is written alone, and its buffer kept for reuse
			done := make(chan struct{})
			p.goFrame(context.Background(), addr, func([]byte, error) { close(done) },
				func(dst []byte, id int64, auth []byte) ([]byte, error) { return append(dst, payload...), nil })
			<-done
		}
		// The tablet goes away for good (its address is never used again).
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	time.Sleep(500 * time.Millisecond) // every connection has seen its end
	p.mu.RLock()
	defer p.mu.RUnlock()
	dead, retained := 0, 0
	for _, c := range p.conns {
		if c.isDead() {
			dead++
		}
		c.wmu.Lock()
		retained += cap(c.wbuf) + cap(c.spare)
		c.wmu.Unlock()
	}
	t.Logf("%d endpoints gone: the pool keeps %d entries (%d dead), retaining %d KiB of write buffers", endpoints, len(p.conns), dead, retained>>10)
	// The last connections may not have seen their end when the next was dialed.
	if len(p.conns) > 2 || retained > 0 {
		t.Fatalf("the pool keeps %d connections (%d dead) of %d endpoints no longer in use, with %d KiB of buffers", len(p.conns), dead, endpoints, retained>>10)
	}
}
