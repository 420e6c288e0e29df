package openmldbtest

import (
	"fmt"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// Rows returns every stored row of db.table exactly once, as encoded bytes: for each pid in
// ascending order, the rows written through the table's first live index on the partition's
// current leader, in insertion order. It reads memory directly (also of stopped tablets), so it
// shows what the cluster holds, independent of any client. The slices are the stored rows
// themselves: do not modify them.
func (c *Cluster) Rows(db, tableName string) ([][]byte, error) {
	tb, err := c.lookup(db, tableName)
	if err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	tb.mu.RLock()
	leaders := make([]int, len(tb.replicas))
	for pid, reps := range tb.replicas {
		leaders[pid] = reps[0]
	}
	tb.mu.RUnlock()
	var out [][]byte
	for pid, ti := range leaders {
		p := c.tablets[ti].partition(tb.tid, uint32(pid))
		if p == nil {
			return nil, fmt.Errorf("rows of %s.%s: pid %d missing on its leader tablet %d", db, tableName, pid, ti)
		}
		p.mu.RLock()
		out = append(out, p.rows...)
		p.mu.RUnlock()
	}
	return out, nil
}

// Count returns how many rows db.table holds (each row counted once, through its first index).
func (c *Cluster) Count(db, tableName string) (int, error) {
	rows, err := c.Rows(db, tableName)
	if err != nil {
		return 0, err
	}
	return len(rows), nil
}

// TableInfo returns a copy of db.table's current metadata, as published in ZooKeeper.
func (c *Cluster) TableInfo(db, tableName string) (*nspb.TableInfo, error) {
	tb, err := c.lookup(db, tableName)
	if err != nil {
		return nil, err
	}
	return tb.snapshot(), nil
}

// Leader returns the index (into Tablets) of the tablet leading partition pid of db.table.
func (c *Cluster) Leader(db, tableName string, pid uint32) (int, error) {
	tb, err := c.lookup(db, tableName)
	if err != nil {
		return 0, err
	}
	_, reps := tb.placement(pid)
	if len(reps) == 0 {
		return 0, fmt.Errorf("%s.%s has no pid %d", db, tableName, pid)
	}
	return reps[0], nil
}
