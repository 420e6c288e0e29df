package openmldb

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// stubLane is a Lane that never serves a connection (its tablets are never reached here).
type stubLane struct{}

func (stubLane) Attach(net.Conn, func([]byte) int, func(error)) (func([]byte) error, func(), error) {
	return nil, nil, net.ErrClosed
}
func (stubLane) Run(fn func()) error { fn(); return nil }

// The lane states of addresses no longer used are dropped when another address is picked (a
// tablet that moved to a new address left one per event loop for the life of the process); a
// state with a Put still on the shared connection, a dial in progress or a redial backoff
// running is kept.
func TestLaneStatesOfUnusedAddressesAreDropped(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &Client{pool: newRPCPool(nil, time.Second, log), log: log}
	defer c.pool.close()
	var lane stubLane
	refused := func() string { // an address whose dial fails at once
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	settled := func(addr string) {
		for deadline := time.Now().Add(5 * time.Second); ; {
			c.lanes.mu.Lock()
			dialing := c.lanes.states[laneKey{lane, addr}].dialing
			c.lanes.mu.Unlock()
			if !dialing {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("dial of %s never ended", addr)
			}
			time.Sleep(time.Millisecond)
		}
	}
	a, b, d := refused(), refused(), refused()
	_, fa := c.pickLane(lane, a) // a Put on the shared connection meanwhile
	settled(a)
	_, fb := c.pickLane(lane, b)
	c.unfallback(fb) // b's Put is over
	settled(b)
	c.lanes.mu.Lock()
	c.lanes.states[laneKey{lane, b}].retryAt = time.Time{} // its redial backoff has passed
	c.lanes.mu.Unlock()
	_, fd := c.pickLane(lane, d)
	defer c.unfallback(fd)
	c.lanes.mu.Lock()
	_, keptA := c.lanes.states[laneKey{lane, a}]
	_, keptB := c.lanes.states[laneKey{lane, b}]
	n := len(c.lanes.states)
	c.lanes.mu.Unlock()
	if !keptA || keptB || n != 2 {
		t.Fatalf("lane states after picking a third address: a kept %v (a Put on its fallback), b kept %v (nothing), %d states; want a and the new one", keptA, keptB, n)
	}
	c.unfallback(fa)
}
