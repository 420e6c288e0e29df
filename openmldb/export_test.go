package openmldb

import "time"

// ZKSessionID exposes the client's current ZooKeeper session id to the external tests (0 in
// standalone mode or while no session is established).
func ZKSessionID(c *Client) int64 {
	if c.zk == nil {
		return 0
	}
	return c.zk.conn.SessionID()
}

// LaneUp reports to the external tests whether the lane's connection to addr is published.
func LaneUp(c *Client, lane Lane, addr string) bool {
	c.lanes.mu.Lock()
	defer c.lanes.mu.Unlock()
	st := c.lanes.states[laneKey{lane, addr}]
	return st != nil && st.conn != nil && !st.conn.isDead()
}

// SetBeforeDial makes the client run f before each dial of a shared connection or a lane's (a
// slow dial, for the external tests); call it before the client's first call.
func SetBeforeDial(c *Client, f func()) { c.pool.beforeDial = f }

// SetAfterTieEnter makes the client run f in every Write round on a table with a TS-column
// index, between entering the tie gate and issuing the ready Puts (a slow round, for the
// external tests); call it before the Writes it is for.
func SetAfterTieEnter(c *Client, f func()) { c.afterTieEnter = f }

// WaitConnsIdle waits until no shared connection of c is being written. A writer that has just
// sent its last frame still takes frames queued before it looks again, so a test of what queued
// frames do waits for it first.
func WaitConnsIdle(c *Client) {
	for {
		busy := false
		c.pool.mu.RLock()
		for _, rc := range c.pool.conns {
			rc.wmu.Lock()
			busy = busy || rc.writing
			rc.wmu.Unlock()
		}
		c.pool.mu.RUnlock()
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// InFlightUsed is how many of the client's in-flight slots are taken.
func InFlightUsed(c *Client) int { return len(c.inflight) }

// LateCalls is how many expired calls the client's connections (shared and lanes') still wait
// to hear about.
func LateCalls(c *Client) int {
	n := 0
	count := func(rc *rpcConn) {
		rc.pmu.Lock()
		n += len(rc.late)
		rc.pmu.Unlock()
	}
	c.pool.mu.RLock()
	for _, rc := range c.pool.conns {
		count(rc)
	}
	c.pool.mu.RUnlock()
	c.lanes.mu.Lock()
	for _, st := range c.lanes.states {
		if st.conn != nil {
			count(st.conn)
		}
	}
	c.lanes.mu.Unlock()
	return n
}
