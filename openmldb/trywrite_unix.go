//go:build unix

package openmldb

import (
	"errors"
	"syscall"
)

// tryWrite writes as much of buf as the socket takes without waiting and returns how much
// that was.
func tryWrite(raw syscall.RawConn, buf []byte) (int, error) {
	n := 0
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for n < len(buf) {
			m, err := syscall.Write(int(fd), buf[n:])
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				return true // full: the caller hands the rest to a goroutine
			case err != nil:
				werr = err
				return true
			}
			n += m
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}
