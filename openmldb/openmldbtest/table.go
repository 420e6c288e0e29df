package openmldbtest

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// index is one column_key entry resolved against the schema.
type index struct {
	name    string
	keyCols []int
	tsCol   int // -1: no TS column, the request time versions the rows
	deleted bool
}

// table is the cluster's view of one table: its immutable schema plus the mutable partition
// placement (which tablet leads and follows each pid).
type table struct {
	tid     uint32
	db      string
	name    string
	cols    []column
	indexes []index

	mu       sync.RWMutex
	info     *nspb.TableInfo // current metadata, as written to ZooKeeper
	replicas [][]int         // per pid: tablet indexes, leader first
}

// newTable resolves a validated TableInfo (tid and partitions already assigned).
func newTable(info *nspb.TableInfo, replicas [][]int) (*table, error) {
	cols, err := columnsFromDesc(info.GetColumnDesc())
	if err != nil {
		return nil, err
	}
	t := &table{tid: info.GetTid(), db: info.GetDb(), name: info.GetName(), cols: cols, info: info, replicas: replicas}
	byName := map[string]int{}
	for i, c := range cols {
		byName[c.name] = i
	}
	for _, ck := range info.GetColumnKey() {
		ix := index{name: ck.GetIndexName(), tsCol: -1, deleted: ck.GetFlag() != 0}
		for _, cn := range ck.GetColName() {
			ci, ok := byName[cn]
			if !ok {
				return nil, fmt.Errorf("index %q: key column %q does not exist", ix.name, cn)
			}
			ix.keyCols = append(ix.keyCols, ci)
		}
		if ts := ck.GetTsName(); ts != "" {
			ci, ok := byName[ts]
			if !ok {
				return nil, fmt.Errorf("index %q: ts column %q does not exist", ix.name, ts)
			}
			ix.tsCol = ci
		}
		t.indexes = append(t.indexes, ix)
	}
	return t, nil
}

// placement returns the partition count and the replicas of pid (leader first).
func (t *table) placement(pid uint32) (n int, reps []int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n = len(t.replicas)
	if int(pid) < n {
		reps = t.replicas[pid]
	}
	return n, reps
}

// snapshot returns a copy of the current TableInfo.
func (t *table) snapshot() *nspb.TableInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return proto.Clone(t.info).(*nspb.TableInfo)
}

// indexByName finds a live index; "" means the first index, as in OpenMLDB's reads.
func (t *table) indexByName(name string) (int, bool) {
	for i, ix := range t.indexes {
		if ix.deleted {
			continue
		}
		if name == "" || ix.name == name {
			return i, true
		}
	}
	return 0, false
}

// isKeyType reports whether a column type may be part of an index key.
func isKeyType(tp typepb.DataType) bool {
	return tp != typepb.DataType_kFloat && tp != typepb.DataType_kDouble
}
