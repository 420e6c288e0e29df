package proxy

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// bridge connects a connection gnet cannot poll (a *tls.Conn) to a socket it can: it returns one
// end of a unix socket pair, and two goroutines copy between the other end and tc until either
// side ends, then close both. Plain TCP connections never take this path.
func bridge(tc net.Conn) (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	inner, err := fileConn(fds[0], "bridge-inner")
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, err
	}
	outer, err := fileConn(fds[1], "bridge-outer")
	if err != nil {
		_ = inner.Close()
		return nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
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
		_, _ = io.Copy(tc, outer)
	}()
	return inner, nil
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
