package openmldb

// ZKSessionID exposes the client's current ZooKeeper session id to the external tests (0 in
// standalone mode or while no session is established).
func ZKSessionID(c *Client) int64 {
	if c.zk == nil {
		return 0
	}
	return c.zk.conn.SessionID()
}
