//go:build !unix

package openmldb

import "syscall"

// tryWrite reports nothing written where non-blocking socket writes are not available here,
// so the caller hands the whole buffer to a goroutine.
func tryWrite(raw syscall.RawConn, buf []byte) (int, error) {
	return 0, nil
}
