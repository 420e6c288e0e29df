package openmldb

// ZKSessionID exposes the client's current ZooKeeper session id to the external tests (0 in
// standalone mode or while no session is established).
func ZKSessionID(c *Client) int64 {
	if c.zk == nil {
		return 0
	}
	return c.zk.conn.SessionID()
}

// PickLane exposes the lane routing of one Put to addr to the external tests: whether it
// would take the lane's own connection, and the release a Put on the shared one must call.
func PickLane(c *Client, lane Lane, addr string) (onLaneConn bool, release func()) {
	rc, st := c.pickLane(lane, addr)
	if rc != nil {
		return true, func() {}
	}
	return false, func() { c.unfallback(st) }
}
