package openmldb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// gatedConn is a socket whose Write completes (whole) only when let through: the interleaving
// where the kernel took a write while the reader saw the connection end.
type gatedConn struct {
	net.Conn
	entered chan struct{}
	release chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	return len(b), nil
}
func (g *gatedConn) Close() error                     { return nil }
func (g *gatedConn) SetWriteDeadline(time.Time) error { return nil }

// A connection that fails while a write is in progress drops that write's buffer when the write
// ends, even when the write itself succeeded.
func TestDeadConnectionDropsTheBufferOfAWriteInProgress(t *testing.T) {
	c := newConnState("tablet:1", nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Second)
	g := &gatedConn{entered: make(chan struct{}), release: make(chan struct{})}
	c.nc = g
	payload := make([]byte, 512<<10)
	ended := make(chan struct{})
	go func() {
		c.start(context.Background(), time.Now().Add(time.Minute), 1, func([]byte, error) {},
			func(dst, auth []byte) ([]byte, error) { return append(dst, payload...), nil })
		close(ended)
	}()
	<-g.entered
	c.fail(errors.New("read: EOF")) // the reader saw the tablet go while the write was in the kernel
	close(g.release)
	<-ended
	c.wmu.Lock()
	retained := cap(c.wbuf) + cap(c.spare)
	c.wmu.Unlock()
	if retained != 0 {
		t.Fatalf("a dead connection retains %d KiB of write buffers", retained>>10)
	}
}
