package openmldb

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestFlushWithoutWaitLeavesFullSocketToGoroutine queues far more than the socket buffers hold
// toward a peer that does not read: flush(false) must return while the peer is stalled, and
// once the peer reads, every byte arrives in order.
func TestFlushWithoutWaitLeavesFullSocketToGoroutine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newDialingConn(ln.Addr().String(), nil, slog.New(slog.DiscardHandler))
	if !c.connected(nc) {
		t.Fatal("connection failed before it was connected")
	}
	defer c.fail(net.ErrClosed)
	var srv net.Conn
	select {
	case srv = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	defer srv.Close()

	ctx := context.Background()
	var want []byte
	for i := range 64 {
		chunk := bytes.Repeat([]byte{byte(i)}, 256<<10)
		want = append(want, chunk...)
		if !c.enqueue(ctx, time.Now().Add(time.Minute), int64(i+1), func([]byte, error) {},
			func(dst, _ []byte) ([]byte, error) { return append(dst, chunk...), nil }) {
			t.Fatalf("frame %d not queued", i)
		}
	}
	done := make(chan struct{})
	go func() {
		c.flush(false)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("flush(false) blocked on a peer that does not read")
	}
	got := make([]byte, len(want))
	if err := srv.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(srv, got); err != nil {
		t.Fatalf("read what was queued: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes arrived changed or out of order")
	}
}
