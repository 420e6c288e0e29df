// Package freeport finds runs of free loopback ports for tests: the proxy opens its per-broker
// listeners on the ports right after its bootstrap port, so tests need whole blocks, not single
// ports.
package freeport

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

// Block returns a port P on 127.0.0.1 such that P..P+n-1 were all free a moment ago.
// The ports are released before returning, which leaves a small race with other processes that
// the caller accepts (or retries).
func Block(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("free port block: n=%d must be >= 1", n)
	}
	var lastErr error
	for attempt := 0; attempt < 64; attempt++ {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port block: listen: %w", err)
		}
		base := first.Addr().(*net.TCPAddr).Port
		held := []net.Listener{first}
		ok := base+n-1 <= 65535
		for i := 1; ok && i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				lastErr = err
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			if err := l.Close(); err != nil {
				return 0, fmt.Errorf("free port block: release %s: %w", l.Addr(), err)
			}
		}
		if ok {
			return base, nil
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no block found")
	}
	return 0, fmt.Errorf("free port block of %d after 64 attempts: %w", n, lastErr)
}

// BlockT is Block failing t when no block is found.
func BlockT(t testing.TB, n int) int {
	t.Helper()
	base, err := Block(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}
