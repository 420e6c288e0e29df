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
	c, srv := connectedPair(t, 0)

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

// TestFramesQueuedWhileABigBufferIsWrittenAreNotOverwritten: after the writer sent a buffer
// larger than it keeps for reuse (1 MiB), the buffer that collected frames meanwhile must not
// also be the one later frames are appended to while it is being written. The peer reads in
// controlled steps through small socket buffers, so each write blocks where the test wants it.
func TestFramesQueuedWhileABigBufferIsWrittenAreNotOverwritten(t *testing.T) {
	c, srv := connectedPair(t, 16<<10)
	if err := srv.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var want, got []byte
	id := int64(0)
	queue := func(b byte, n int) {
		chunk := bytes.Repeat([]byte{b}, n)
		want = append(want, chunk...)
		id++
		if !c.enqueue(context.Background(), time.Now().Add(time.Minute), id, func([]byte, error) {},
			func(dst, _ []byte) ([]byte, error) { return append(dst, chunk...), nil }) {
			t.Fatalf("frame %c not queued", b)
		}
	}
	read := func(n int) { // the peer takes n more bytes
		buf := make([]byte, n)
		if _, err := io.ReadFull(srv, buf); err != nil {
			t.Fatalf("peer read: %v", err)
		}
		got = append(got, buf...)
	}
	writer := func() chan struct{} {
		done := make(chan struct{})
		go func() {
			c.flush(true)
			close(done)
		}()
		return done
	}

	const small, big = 900 << 10, 4 << 20
	queue('p', small) // written alone: its buffer becomes the writer's spare
	done := writer()
	read(small)
	<-done
	queue('w', big) // too big to keep: the writer swaps in the spare meanwhile
	done = writer()
	read(1) // the writer is inside the big write now
	queue('x', small-100<<10)
	read(big - 1) // the writer goes on with what 'x' was queued in
	read(1)       // and is inside that write now
	queue('y', small)
	read(len(want) - len(got))
	<-done
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("byte %d of %d on the wire is %q, want %q: a frame was overwritten while being written", i, len(want), got[i], want[i])
		}
	}
}

// connectedPair is an rpcConn connected to a loopback peer that reads only when the test does,
// closed at the end. buf > 0 shrinks the connection's send and the peer's receive buffer to it,
// so writes block after little.
func connectedPair(t *testing.T, buf int) (*rpcConn, net.Conn) {
	t.Helper()
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
	if buf > 0 {
		if err := nc.(*net.TCPConn).SetWriteBuffer(buf); err != nil {
			t.Fatal(err)
		}
	}
	c := newDialingConn(ln.Addr().String(), nil, slog.New(slog.DiscardHandler), time.Minute)
	if !c.connected(nc) {
		t.Fatal("connection failed before it was connected")
	}
	t.Cleanup(func() { c.fail(net.ErrClosed) })
	var srv net.Conn
	select {
	case srv = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { srv.Close() })
	if buf > 0 {
		if err := srv.(*net.TCPConn).SetReadBuffer(buf); err != nil {
			t.Fatal(err)
		}
	}
	return c, srv
}
