package openmldbtest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// faults holds the injected Put failures and stalls, shared by every tablet.
type faults struct {
	mu         sync.Mutex
	failN      int
	failCode   int32
	stallUntil time.Time
	stallMoved chan struct{} // closed whenever StallPuts changes the deadline

	// Lock-free mirrors for the Put fast path: the stall deadline (unix ns) and whether any
	// injected failure is pending.
	stallNs atomic.Int64
	failing atomic.Bool
}

// stalling reports whether Puts arriving now are held by StallPuts.
func (f *faults) stalling() bool {
	return time.Now().UnixNano() < f.stallNs.Load()
}

func (f *faults) takeFailure() (int32, bool) {
	if !f.failing.Load() {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failN <= 0 {
		return 0, false
	}
	f.failN--
	f.failing.Store(f.failN > 0)
	return f.failCode, true
}

// FailPuts makes the next n Puts, on any tablet, answer code with msg "injected failure" and store
// nothing (n <= 0 cancels). Injected failures are taken after any stall and before validation.
func (c *Cluster) FailPuts(n int, code int32) {
	c.faults.mu.Lock()
	defer c.faults.mu.Unlock()
	c.faults.failN, c.faults.failCode = n, code
	c.faults.failing.Store(n > 0)
}

// StallPuts holds every Put that arrives within the next d (on any tablet) until d has elapsed
// from now, then processes it normally; a later call replaces the deadline, so d <= 0 releases
// every held Put at once. A Put held by a tablet that
// is stopped meanwhile gets brpc error 2003 (ELOGOFF) or loses its connection.
func (c *Cluster) StallPuts(d time.Duration) {
	c.faults.mu.Lock()
	defer c.faults.mu.Unlock()
	c.faults.stallUntil = time.Now().Add(d)
	c.faults.stallNs.Store(c.faults.stallUntil.UnixNano())
	if c.faults.stallMoved != nil {
		close(c.faults.stallMoved)
	}
	c.faults.stallMoved = make(chan struct{})
}

// StopTablet stops tablet i for good: its listener and connections close and its ZooKeeper
// session ends, so <root>/nodes/<endpoint> disappears. The TableInfo of every table is updated
// (and notify bumped): its replicas there get is_alive=false and, with Options.AutoFailover, each
// partition it led gets the next live replica as leader (a partition with no live replica keeps
// its dead leader).
func (c *Cluster) StopTablet(i int) error {
	if i < 0 || i >= len(c.tablets) {
		return fmt.Errorf("stop tablet %d: have %d tablets", i, len(c.tablets))
	}
	t := c.tablets[i]
	if t.stopped.Load() {
		return nil
	}
	t.stop()
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	c.mu.RLock()
	tables := make([]*table, 0, len(c.tables))
	for _, tb := range c.tables {
		tables = append(tables, tb)
	}
	c.mu.RUnlock()
	for _, tb := range tables {
		changed := false
		tb.mu.Lock()
		for pid, reps := range tb.replicas {
			// Copy on write: placement hands the slice out to readers outside tb.mu.
			reps = slices.Clone(reps)
			has := false
			for _, r := range reps {
				has = has || r == i
			}
			if !has {
				continue
			}
			changed = true
			if c.opts.AutoFailover && reps[0] == i {
				for k := 1; k < len(reps); k++ {
					if !c.tablets[reps[k]].stopped.Load() {
						reps[0], reps[k] = reps[k], reps[0]
						break
					}
				}
			}
			tb.replicas[pid] = reps
			c.syncPartitionMeta(tb, pid)
		}
		tb.mu.Unlock()
		if changed {
			if err := c.publish(tb); err != nil {
				return fmt.Errorf("stop tablet %d: %w", i, err)
			}
		}
	}
	c.log.Info("tablet stopped", "tablet", i, "endpoint", t.endpoint)
	return nil
}

// syncPartitionMeta rewrites TableInfo.table_partition[pid] from tb.replicas; tb.mu held. Existing
// entries keep their order (OpenMLDB flips is_leader in place; clients must not assume the leader
// comes first), new replicas are appended.
func (c *Cluster) syncPartitionMeta(tb *table, pid int) {
	tp := tb.info.GetTablePartition()[pid]
	reps := tb.replicas[pid]
	leader := c.tablets[reps[0]].endpoint
	present := map[string]bool{}
	for _, pm := range tp.GetPartitionMeta() {
		present[pm.GetEndpoint()] = true
	}
	for _, ti := range reps {
		if ep := c.tablets[ti].endpoint; !present[ep] {
			tp.PartitionMeta = append(tp.PartitionMeta, &nspb.PartitionMeta{Endpoint: proto.String(ep)})
		}
	}
	alive := map[string]bool{}
	for _, t := range c.tablets {
		alive[t.endpoint] = !t.stopped.Load()
	}
	for _, pm := range tp.GetPartitionMeta() {
		pm.IsLeader = proto.Bool(pm.GetEndpoint() == leader)
		pm.IsAlive = proto.Bool(alive[pm.GetEndpoint()])
	}
}

// MoveLeader makes tablet to the leader of partition pid of db.table; the old leader stays as a
// follower. When to held no replica it first receives a copy of the leader's data. TableInfo is
// rewritten in ZooKeeper and notify bumped; from the moment MoveLeader returns (in fact slightly
// before, while ZooKeeper is written) the old leader answers Puts with 103.
func (c *Cluster) MoveLeader(db, tableName string, pid uint32, to int) error {
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	// Checked under ddlMu, so a StopTablet(to) cannot run between the check and the move.
	if to < 0 || to >= len(c.tablets) || c.tablets[to].stopped.Load() {
		return fmt.Errorf("move leader of %s.%s pid %d: tablet %d is not running", db, tableName, pid, to)
	}
	tb, err := c.lookup(db, tableName)
	if err != nil {
		return fmt.Errorf("move leader: %w", err)
	}
	tb.mu.Lock()
	if int(pid) >= len(tb.replicas) {
		tb.mu.Unlock()
		return fmt.Errorf("move leader of %s.%s: pid %d of %d", db, tableName, pid, len(tb.replicas))
	}
	reps := slices.Clone(tb.replicas[pid]) // copy on write, as in StopTablet
	pos := -1
	for k, r := range reps {
		if r == to {
			pos = k
		}
	}
	if pos < 0 {
		src := c.tablets[reps[0]].partition(tb.tid, pid)
		if src == nil {
			tb.mu.Unlock()
			return fmt.Errorf("move leader of %s.%s pid %d: leader holds no data", db, tableName, pid)
		}
		c.tablets[to].addPartition(tb.tid, pid, src.clone())
		reps = append(reps, to)
		pos = len(reps) - 1
	}
	reps[0], reps[pos] = reps[pos], reps[0]
	tb.replicas[pid] = reps
	c.syncPartitionMeta(tb, int(pid))
	tb.mu.Unlock()
	if err := c.publish(tb); err != nil {
		return fmt.Errorf("move leader of %s.%s pid %d: %w", db, tableName, pid, err)
	}
	c.log.Info("leader moved", "db", db, "table", tableName, "pid", pid, "to", c.tablets[to].endpoint)
	return nil
}
