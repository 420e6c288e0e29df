package proxy

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// bridge connects a connection gnet cannot poll (a *tls.Conn) to a socket it can: it returns one
// end of a unix socket pair, and two goroutines copy between the other end and tc until either
// side ends, then close both. Plain TCP connections never take this path.
func bridge(tc net.Conn) (net.Conn, *bridgeState, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	inner, err := fileConn(fds[0], "bridge-inner")
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, nil, err
	}
	outer, err := fileConn(fds[1], "bridge-outer")
	if err != nil {
		_ = inner.Close()
		return nil, nil, err
	}
	st := &bridgeState{}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			st.ended.Store(true)
			_ = tc.Close()
			_ = outer.Close()
		})
	}
	go func() {
		defer stop()
		_, _ = io.Copy(outer, tc)
	}()
	go func() {
		defer stop()
		_, _ = io.Copy(countingWriter{tc, &st.delivered}, outer)
	}()
	return inner, st, nil
}

// bridgeState is how far a bridge has carried the proxy's output: a drain waits until the client
// has taken every answer, and for a TLS client that is when the bridge has written it to the
// TLS connection, not when it left the proxy's send buffer for the socket pair.
type bridgeState struct {
	delivered atomic.Int64 // bytes written to the TLS connection
	ended     atomic.Bool  // the bridge stopped: nothing more will be delivered
}

// countingWriter adds the bytes written to w to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	k, err := c.w.Write(b)
	c.n.Add(int64(k))
	return k, err
}

// fileConn turns a socket fd into a net.Conn (the fd is consumed).
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket pair: %w", err)
	}
	return c, nil
}
