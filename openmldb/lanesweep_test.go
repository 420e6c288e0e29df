package openmldb

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// nopLane is a Lane that is never reached: its tablets refuse connections before Attach.
type nopLane struct{ name string }

func (*nopLane) Attach(net.Conn, func([]byte) int, func(error)) (func([]byte) error, func(), error) {
	panic("not reached")
}
func (*nopLane) Run(fn func()) error { fn(); return nil }

// laneTestClient is a client with only what picking lanes needs: a pool and a logger.
func laneTestClient(t *testing.T) *Client {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &Client{pool: newRPCPool(nil, time.Second, log), log: log}
	t.Cleanup(c.pool.close)
	return c
}

// waitLaneDialed waits until the lane's dial to addr has ended.
func waitLaneDialed(t *testing.T, c *Client, lane Lane, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c.lanes.mu.Lock()
		st := c.lanes.states[laneKey{lane, addr}]
		dialing := st != nil && st.dialing
		c.lanes.mu.Unlock()
		if !dialing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lane dial of %s never ended", addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// The lane states of addresses no longer used are dropped when another address is picked (a
// tablet that moved to a new address left one per event loop for the life of the process); a
// state with a Put still on the shared connection, a dial in progress or a redial backoff
// running is kept.
func TestLaneStatesOfUnusedAddressesAreDropped(t *testing.T) {
	c := laneTestClient(t)
	lane := &nopLane{"loop"}
	a, b, d := refusedAddr(t), refusedAddr(t), refusedAddr(t)
	_, fa := c.pickLane(lane, a) // a Put on the shared connection meanwhile
	waitLaneDialed(t, c, lane, a)
	_, fb := c.pickLane(lane, b)
	c.unfallback(fb) // b's Put is over
	waitLaneDialed(t, c, lane, b)
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

// The sweep of unused lane states keeps a state whose dial failed until its laneRedial backoff
// has passed: with two event loops, each loop's pick swept the other's, and every alternation
// dialed a refusing tablet again.
func TestLaneRedialBackoffSurvivesTheSweep(t *testing.T) {
	c := laneTestClient(t)
	var dials atomic.Int32
	c.pool.beforeDial = func() { dials.Add(1) }
	addr := refusedAddr(t)
	pick := func(l Lane) {
		conn, fb := c.pickLane(l, addr)
		if conn != nil {
			t.Fatal("a lane connection to a refusing address")
		}
		waitLaneDialed(t, c, l, addr)
		c.unfallback(fb) // the Put on the shared connection failed at once, too
	}
	l1, l2 := &nopLane{"loop1"}, &nopLane{"loop2"}
	pick(l1) // dials, fails: loop1 waits laneRedial before its next dial
	pick(l2) // dials, fails: loop2 waits laneRedial too
	before := dials.Load()
	for range 10 { // well within laneRedial
		pick(l1)
		pick(l2)
	}
	if extra := dials.Load() - before; extra != 0 {
		t.Fatalf("%d lane dials within laneRedial (%v) of two lanes' failed dials, want 0: the sweep of unused lane states dropped their retryAt", extra, laneRedial)
	}
}
