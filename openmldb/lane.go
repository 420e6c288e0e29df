package openmldb

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// A Lane is an event loop that can own tablet connections. Writes naming a lane
// (WriteOptions.Lane) travel on the lane's own connection to each tablet, whose responses the
// loop reads itself: their completions run on the loop, without a reader goroutine to wake and
// without a hand-off back to the loop that issued them. A server running its client
// connections on event loops (the proxy) gives each loop's connections that loop's lane.
//
// Lane values are map keys: use pointers.
type Lane interface {
	// Attach hands nc to the loop and returns once the loop serves it; it is called off the
	// loop. The loop then calls feed with the bytes read so far that feed has not consumed
	// (feed returns how many it consumed), and closed once when the connection ends. write,
	// called only on the loop, sends b or buffers what the socket does not take at once; close
	// may be called from any goroutine. Attach may duplicate nc's socket: the caller closes nc
	// when Attach returns. A lane bounds what it buffers: write fails, or the loop closes the
	// connection (closed is called), when the tablet stops taking its output.
	Attach(nc net.Conn, feed func(data []byte) int, closed func(err error)) (write func(b []byte) error, close func(), err error)
	// Run runs fn on the loop; it is called from other goroutines and must not wait for fn.
	Run(fn func()) error
}

// PutCounts returns how many Puts the client has sent on lane connections and how many on the
// shared ones, for an operator to see whether writes take their loops' connections.
func (c *Client) PutCounts() (onLanes, shared uint64) {
	return c.lanePuts.Load(), c.sharedPuts.Load()
}

// laneRedial is how long a lane waits after a failed dial before it tries again; meanwhile its
// writes use the client's shared connections.
const laneRedial = time.Second

// laneIO is how a lane-owned connection is written and closed.
type laneIO struct {
	lane      Lane
	write     func([]byte) error // on the lane's loop only
	close     func()
	scheduled bool // guarded by rpcConn.wmu: a flush task is queued on the loop
	// held (guarded by rpcConn.wmu): Puts queue but are not written, because Puts of the lane
	// sent earlier on the shared connection are not over yet.
	held bool
}

// laneKey names one lane's connection to one tablet.
type laneKey struct {
	lane Lane
	addr string
}

// laneState is one lane's connection to one tablet. Puts issued while it is not up take the
// shared connection (counted in fallback until each is over: answered, or its connection ended).
// Once it is up, Puts queue on it, held until fallback is back to 0, so a client connection's
// Puts never overtake each other between the two connections.
type laneState struct {
	conn     *rpcConn // nil until attached; dead ones are dropped on the next pick
	dialing  bool
	retryAt  time.Time
	fallback int // guarded by laneConns.mu
}

// laneConns keeps every lane's tablet connections.
type laneConns struct {
	mu     sync.Mutex
	states map[laneKey]*laneState
	closed bool
}

// pickLane returns the lane's live connection to addr (holding its writes while fallback Puts
// are not over), starting a dial when there is none. When the Put must take the shared
// connection it returns instead the lane state that counted it as a fallback; the caller calls
// unfallback with it once that Put is over or was not sent.
func (c *Client) pickLane(lane Lane, addr string) (conn *rpcConn, fallback *laneState) {
	l := &c.lanes
	k := laneKey{lane, addr}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.states == nil {
		l.states = map[laneKey]*laneState{}
	}
	st := l.states[k]
	if st == nil {
		// Lanes of addresses no longer used go now (see rpcPool.conn): those with no live
		// connection, no dial and no fallback Put.
		now := time.Now()
		for ok, os := range l.states {
			if (os.conn == nil || os.conn.isDead()) && !os.dialing && os.fallback == 0 && !now.Before(os.retryAt) {
				delete(l.states, ok)
			}
		}
		st = &laneState{}
		l.states[k] = st
	}
	if st.conn != nil && st.conn.isDead() {
		st.conn = nil
	}
	if st.conn == nil && !st.dialing && !l.closed && !time.Now().Before(st.retryAt) {
		st.dialing = true
		go c.dialLane(k, st)
	}
	if st.conn != nil {
		return st.conn, nil
	}
	st.fallback++
	return nil, st
}

// unfallback ends a Put that pickLane sent to the shared connection (st nil: it did not).
func (c *Client) unfallback(st *laneState) {
	if st == nil {
		return
	}
	c.lanes.mu.Lock()
	st.fallback--
	var release *rpcConn
	if st.fallback == 0 && st.conn != nil {
		release = st.conn
	}
	c.lanes.mu.Unlock()
	if release != nil {
		release.releaseHold()
	}
}

// releaseHold lets a held lane connection write what queued meanwhile.
func (c *rpcConn) releaseHold() {
	c.wmu.Lock()
	held := c.lane.held
	c.lane.held = false
	c.wmu.Unlock()
	if held {
		c.flushFrom(false, false)
	}
}

// dialLane connects the lane of k to its tablet and attaches the connection to the lane's loop.
func (c *Client) dialLane(k laneKey, st *laneState) {
	nc, err := c.pool.dialTCP(k.addr)
	var rc *rpcConn
	if err == nil {
		rc = newLaneConn(k.addr, c.pool.auth, c.log, c.pool.observe, 2*c.pool.timeout)
		write, closeConn, aerr := k.lane.Attach(nc, rc.feed, func(err error) {
			rc.fail(fmt.Errorf("read: %w", err))
		})
		_ = nc.Close()
		if aerr != nil {
			err = fmt.Errorf("attach to event loop: %w", aerr)
			rc.fail(err) // stops its sweeper
		} else {
			rc.attach(&laneIO{lane: k.lane, write: write, close: closeConn})
		}
	}
	l := &c.lanes
	l.mu.Lock()
	defer l.mu.Unlock()
	st.dialing = false
	switch {
	case err != nil:
		st.retryAt = time.Now().Add(laneRedial)
		cerr := &ConnError{Addr: k.addr, Err: err}
		c.log.Debug("openmldb: lane connection failed; using the shared one meanwhile", "addr", k.addr, "err", err)
		if c.pool.observe != nil {
			c.pool.observe(k.addr, 0, cerr)
		}
	case l.closed:
		rc.fail(net.ErrClosed)
	default:
		// Nobody writes rc before it is published: held is set without a race.
		rc.lane.held = st.fallback > 0
		st.conn = rc
		c.log.Debug("openmldb: lane connected", "addr", k.addr)
	}
}

// closeLanes closes every lane connection; their pending calls fail with ConnError.
func (c *Client) closeLanes() {
	l := &c.lanes
	l.mu.Lock()
	l.closed = true
	var conns []*rpcConn
	for _, st := range l.states {
		if st.conn != nil {
			conns = append(conns, st.conn)
		}
	}
	l.mu.Unlock()
	for _, rc := range conns {
		rc.fail(net.ErrClosed)
	}
}

// newLaneConn makes a connection whose reads a lane's loop does (feed); it is written once
// attach has given it its laneIO.
func newLaneConn(addr string, auth []byte, log *slog.Logger, observe func(string, time.Duration, error), lateKeep time.Duration) *rpcConn {
	c := newConnState(addr, auth, log, lateKeep)
	c.observe = observe
	go c.sweepLoop()
	return c
}

// attach gives a lane connection its loop's write and close. A connection that failed before
// it was attached is closed at once.
func (c *rpcConn) attach(io *laneIO) {
	c.pmu.Lock()
	c.lane = io
	dead := c.dead != nil
	c.pmu.Unlock()
	if dead {
		io.close()
	}
}

// flushFrom writes what is queued. onLoop says the caller runs on the connection's lane loop;
// a lane connection flushed from elsewhere is written by a task on its loop. Other connections
// flush as flush(wait) does.
func (c *rpcConn) flushFrom(onLoop, wait bool) {
	if c.lane == nil {
		c.flush(wait)
		return
	}
	if onLoop {
		c.flush(false)
		return
	}
	c.wmu.Lock()
	if c.lane.scheduled {
		c.wmu.Unlock()
		return
	}
	c.lane.scheduled = true
	c.wmu.Unlock()
	err := c.lane.lane.Run(func() {
		c.wmu.Lock()
		c.lane.scheduled = false
		c.wmu.Unlock()
		c.flush(false)
	})
	if err != nil {
		c.fail(fmt.Errorf("schedule write on event loop: %w", err))
	}
}
