package openmldb

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// nopLane is a Lane that is never reached: the tablet refuses connections before Attach.
type nopLane struct{ name string }

func (*nopLane) Attach(net.Conn, func([]byte) int, func(error)) (func([]byte) error, func(), error) {
	panic("not reached")
}
func (*nopLane) Run(fn func()) error { fn(); return nil }

// The sweep of unused lane states keeps a state whose dial failed until its laneRedial backoff
// has passed: with two event loops, each loop's pick swept the other's, and every alternation
// dialed a refusing tablet again.
func TestLaneRedialBackoffSurvivesTheSweep(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &Client{log: log, pool: newRPCPool(nil, time.Second, log)}
	defer c.pool.close()
	var dials atomic.Int32
	c.pool.beforeDial = func() { dials.Add(1) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connections to addr are refused

	dialDone := func(l Lane) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; {
			c.lanes.mu.Lock()
			st := c.lanes.states[laneKey{l, addr}]
			busy := st != nil && st.dialing
			c.lanes.mu.Unlock()
			if !busy {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("lane dial never ended")
			}
			time.Sleep(time.Millisecond)
		}
	}
	pick := func(l Lane) {
		conn, fb := c.pickLane(l, addr)
		if conn != nil {
			t.Fatal("a lane connection to a refusing address")
		}
		dialDone(l)
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
