// Package freeport finds runs of free loopback ports for tests: the proxy opens its per-broker
// listeners on the ports right after its bootstrap port, so tests need whole blocks, not single
// ports.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
)

// lowest is the lowest port a block may start at: above the well-known and commonly configured
// service ports.
const lowest = 10000

// Block returns a port P on 127.0.0.1 such that P..P+n-1 were all free a moment ago.
//
// The ports are released before returning, so another process could take one before the caller
// listens on it. Blocks are therefore drawn at random from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), which the kernel never hands out as the source port of an
// outgoing connection: with ports from that range (listening on :0), any test process opening a
// connection meanwhile could take one, and the proxy's per-broker listener then failed to bind
// while clients were directed to whatever held the port (seen in CI as a produce that never
// completed). What remains is a race with another test picking the same random block.
func Block(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("free port block: n=%d must be >= 1", n)
	}
	top := ephemeralLow() - n // the block ends below the ephemeral range
	var lastErr error
	for attempt := 0; attempt < 64; attempt++ {
		var base int
		if top > lowest {
			base = lowest + rand.IntN(top-lowest)
		} else {
			// No room below the ephemeral range: let the kernel choose, as a last resort.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("free port block: listen: %w", err)
			}
			base = l.Addr().(*net.TCPAddr).Port
			l.Close()
			if base+n-1 > 65535 {
				continue
			}
		}
		if err := allFree(base, n); err != nil {
			lastErr = err
			continue
		}
		return base, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no block found")
	}
	return 0, fmt.Errorf("free port block of %d after 64 attempts: %w", n, lastErr)
}

// allFree reports whether base..base+n-1 can all be listened on now.
func allFree(base, n int) error {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
		if err != nil {
			return err
		}
		held = append(held, l)
	}
	return nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default when it cannot
// be read).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
			lo = 32768
		}
	}
	return lo
}

// TB is the part of testing.TB that BlockT uses (so this package, which the demo's ZooKeeper
// also uses, does not link the testing package into the binary).
type TB interface {
	Helper()
	Fatal(args ...any)
}

// BlockT is Block failing t when no block is found.
func BlockT(t TB, n int) int {
	t.Helper()
	base, err := Block(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}
