package openmldbtest

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// OpenMLDB ReturnCode values (src/base/status.h) the cluster answers with.
const (
	codeOK                 = 0
	codeTableNotExist      = 100
	codeTableExists        = 101
	codeTableIsFollower    = 103
	codeIdxNameNotFound    = 108
	codeKeyNotFound        = 109
	codeInvalidDimension   = 115
	codePutFailed          = 116
	codeStLessThanEt       = 117
	codeCreateTableFailed  = 131
	codeSetZKFailed        = 304
	codeInvalidParameter   = 307
	codeDatabaseExists     = 801
	codeDatabaseNotFound   = 802
	defaultPartitionNum    = 8
	defaultReplicaNum      = 3
	maxPartitionNum        = 1024
	nameServerServiceName  = "openmldb.nameserver.NameServer"
	tabletServerService    = "openmldb.api.TabletServer"
	tabletStateHealthy     = "kTabletHealthy"
	tabletStateOffline     = "kTabletOffline"
	defaultIndexNameFormat = "INDEX_0_%d"
)

func generalResp(code int32, msg string) *nspb.GeneralResponse {
	r := &nspb.GeneralResponse{Code: proto.Int32(code)}
	if msg != "" {
		r.Msg = proto.String(msg)
	}
	return r
}

func (c *Cluster) nameServerService() *service {
	return &service{name: nameServerServiceName, methods: map[string]method{
		"CreateDatabase": typed(func() *nspb.CreateDatabaseRequest { return &nspb.CreateDatabaseRequest{} }, c.createDatabase),
		"DropDatabase":   typed(func() *nspb.DropDatabaseRequest { return &nspb.DropDatabaseRequest{} }, c.dropDatabase),
		"ShowDatabase":   typed(func() *nspb.GeneralRequest { return &nspb.GeneralRequest{} }, c.showDatabase),
		"CreateTable":    typed(func() *nspb.CreateTableRequest { return &nspb.CreateTableRequest{} }, c.createTable),
		"DropTable":      typed(func() *nspb.DropTableRequest { return &nspb.DropTableRequest{} }, c.dropTable),
		"ShowTable":      typed(func() *nspb.ShowTableRequest { return &nspb.ShowTableRequest{} }, c.showTable),
		"ShowTablet":     typed(func() *nspb.ShowTabletRequest { return &nspb.ShowTabletRequest{} }, c.showTablet),
	}}
}

func (c *Cluster) createDatabase(_ context.Context, req *nspb.CreateDatabaseRequest) (*nspb.GeneralResponse, *rpcError) {
	db := req.GetDb()
	if db == "" {
		return generalResp(codeInvalidParameter, "database name is empty"), nil
	}
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	c.mu.RLock()
	_, exists := c.dbs[db]
	c.mu.RUnlock()
	if exists {
		if req.GetIfNotExists() {
			return generalResp(codeOK, ""), nil
		}
		return generalResp(codeDatabaseExists, "database already exists"), nil
	}
	if c.zkc != nil {
		if _, err := c.zkc.Create(path.Join(c.paths.db, db), nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			c.log.Error("create database znode", "db", db, "err", err)
			return generalResp(codeSetZKFailed, "set zk failed: "+err.Error()), nil
		}
	}
	c.mu.Lock()
	c.dbs[db] = struct{}{}
	c.mu.Unlock()
	c.log.Info("database created", "db", db)
	return generalResp(codeOK, ""), nil
}

func (c *Cluster) dropDatabase(_ context.Context, req *nspb.DropDatabaseRequest) (*nspb.GeneralResponse, *rpcError) {
	db := req.GetDb()
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	c.mu.RLock()
	_, exists := c.dbs[db]
	tables := 0
	for _, t := range c.tables {
		if t.db == db {
			tables++
		}
	}
	c.mu.RUnlock()
	if !exists {
		return generalResp(codeDatabaseNotFound, "database not found"), nil
	}
	if tables > 0 {
		return generalResp(codeInvalidParameter, fmt.Sprintf("database %s is not empty (%d tables)", db, tables)), nil
	}
	if c.zkc != nil {
		if err := c.zkc.Delete(path.Join(c.paths.db, db), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return generalResp(codeSetZKFailed, "delete zk node failed: "+err.Error()), nil
		}
	}
	c.mu.Lock()
	delete(c.dbs, db)
	c.mu.Unlock()
	return generalResp(codeOK, ""), nil
}

func (c *Cluster) showDatabase(_ context.Context, _ *nspb.GeneralRequest) (*nspb.ShowDatabaseResponse, *rpcError) {
	c.mu.RLock()
	dbs := make([]string, 0, len(c.dbs))
	for db := range c.dbs {
		dbs = append(dbs, db)
	}
	c.mu.RUnlock()
	sort.Strings(dbs)
	return &nspb.ShowDatabaseResponse{Code: proto.Int32(codeOK), Db: dbs}, nil
}

// liveTablets lists the indexes of running tablets.
func (c *Cluster) liveTablets() []int {
	var live []int
	for i, t := range c.tablets {
		if !t.stopped.Load() {
			live = append(live, i)
		}
	}
	return live
}

func (c *Cluster) createTable(_ context.Context, req *nspb.CreateTableRequest) (*nspb.GeneralResponse, *rpcError) {
	in := req.GetTableInfo()
	if in == nil {
		return generalResp(codeInvalidParameter, "table_info is missing"), nil
	}
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	db, name := in.GetDb(), in.GetName()
	c.mu.RLock()
	_, dbExists := c.dbs[db]
	existing := c.byName[db+"\x00"+name]
	c.mu.RUnlock()
	if db == "" {
		return generalResp(codeInvalidParameter, "db is empty (legacy tables without a database are not supported)"), nil
	}
	if !dbExists {
		return generalResp(codeDatabaseNotFound, "database not found"), nil
	}
	if existing != nil {
		if req.GetCreateIfNotExist() {
			return generalResp(codeOK, "table already exists"), nil
		}
		return generalResp(codeTableExists, "table already exists"), nil
	}
	info := proto.Clone(in).(*nspb.TableInfo)
	if err := c.completeTableInfo(info); err != nil {
		return generalResp(codeInvalidParameter, fmt.Sprintf("create table %s.%s: %v", db, name, err)), nil
	}
	live := c.liveTablets()
	partNum, replicaNum := int(info.GetPartitionNum()), int(info.GetReplicaNum())
	if c.standalone {
		partNum, replicaNum = 1, 1
	}
	if partNum == 0 {
		partNum = defaultPartitionNum
	}
	if replicaNum == 0 {
		replicaNum = min(defaultReplicaNum, len(live))
	}
	if partNum > maxPartitionNum {
		return generalResp(codeInvalidParameter, fmt.Sprintf("partition_num %d above %d", partNum, maxPartitionNum)), nil
	}
	if replicaNum < 1 || replicaNum > len(live) {
		return generalResp(codeCreateTableFailed, fmt.Sprintf("replica_num %d but %d healthy tablets", replicaNum, len(live))), nil
	}
	info.PartitionNum = proto.Uint32(uint32(partNum))
	info.ReplicaNum = proto.Uint32(uint32(replicaNum))
	c.mu.Lock()
	c.lastTid++
	tid := c.lastTid
	c.mu.Unlock()
	info.Tid = proto.Uint32(tid)
	// Leaders round-robin over the healthy tablets, followers on the next ones.
	replicas := make([][]int, partNum)
	info.TablePartition = nil
	for pid := 0; pid < partNum; pid++ {
		tp := &nspb.TablePartition{Pid: proto.Uint32(uint32(pid))}
		for r := 0; r < replicaNum; r++ {
			ti := live[(pid+r)%len(live)]
			replicas[pid] = append(replicas[pid], ti)
			tp.PartitionMeta = append(tp.PartitionMeta, &nspb.PartitionMeta{
				Endpoint: proto.String(c.tablets[ti].endpoint),
				IsLeader: proto.Bool(r == 0),
				IsAlive:  proto.Bool(true),
			})
		}
		info.TablePartition = append(info.TablePartition, tp)
	}
	t, err := newTable(info, replicas)
	if err != nil {
		return generalResp(codeInvalidParameter, fmt.Sprintf("create table %s.%s: %v", db, name, err)), nil
	}
	for pid, reps := range replicas {
		for _, ti := range reps {
			c.tablets[ti].addPartition(tid, uint32(pid), newPartition(t.indexes))
		}
	}
	if c.zkc != nil {
		if err := createOrSet(c.zkc, c.paths.tableIndex, []byte(strconv.FormatUint(uint64(tid), 10))); err != nil {
			c.dropPartitions(t)
			return generalResp(codeSetZKFailed, err.Error()), nil
		}
	}
	c.mu.Lock()
	c.tables[tid] = t
	c.byName[db+"\x00"+name] = t
	c.mu.Unlock()
	if err := c.publish(t); err != nil {
		c.log.Error("publish table", "db", db, "table", name, "err", err)
		return generalResp(codeSetZKFailed, err.Error()), nil
	}
	c.log.Info("table created", "db", db, "table", name, "tid", tid, "partitions", partNum, "replicas", replicaNum)
	return generalResp(codeOK, ""), nil
}

// completeTableInfo validates columns and indexes and applies the nameserver's defaults (default
// index, TTL, storage mode), like SchemaAdapter::CheckTableMeta and IndexUtil in OpenMLDB.
func (c *Cluster) completeTableInfo(info *nspb.TableInfo) error {
	if info.GetName() == "" {
		return errors.New("table name is empty")
	}
	cols, err := columnsFromDesc(info.GetColumnDesc())
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return errors.New("no columns")
	}
	byName := map[string]column{}
	for _, col := range cols {
		if col.name == "" {
			return errors.New("a column has an empty name")
		}
		if _, dup := byName[col.name]; dup {
			return fmt.Errorf("duplicate column %q", col.name)
		}
		byName[col.name] = col
	}
	if len(info.GetColumnKey()) == 0 {
		key := ""
		for _, col := range cols {
			if isKeyType(col.typ) {
				key = col.name
				break
			}
		}
		if key == "" {
			return errors.New("no column can be the default index key (all are float/double)")
		}
		info.ColumnKey = []*commonpb.ColumnKey{{
			IndexName: proto.String(fmt.Sprintf(defaultIndexNameFormat, time.Now().Unix())),
			ColName:   []string{key},
		}}
	}
	seenName := map[string]bool{}
	seenDef := map[string]bool{}
	for i, ck := range info.GetColumnKey() {
		if ck.GetIndexName() == "" {
			return fmt.Errorf("index %d has no index_name", i)
		}
		if seenName[ck.GetIndexName()] {
			return fmt.Errorf("duplicate index name %q", ck.GetIndexName())
		}
		seenName[ck.GetIndexName()] = true
		if len(ck.GetColName()) == 0 {
			// IndexUtil::FillColumnKey: the index name doubles as the key column.
			ck.ColName = []string{ck.GetIndexName()}
		}
		for _, cn := range ck.GetColName() {
			col, ok := byName[cn]
			if !ok {
				return fmt.Errorf("index %q: key column %q does not exist", ck.GetIndexName(), cn)
			}
			if !isKeyType(col.typ) {
				return fmt.Errorf("index %q: key column %q is %v (float/double cannot be keys)", ck.GetIndexName(), cn, col.typ)
			}
		}
		if ts := ck.GetTsName(); ts != "" {
			col, ok := byName[ts]
			if !ok {
				return fmt.Errorf("index %q: ts column %q does not exist", ck.GetIndexName(), ts)
			}
			if col.typ != typepb.DataType_kBigInt && col.typ != typepb.DataType_kTimestamp {
				return fmt.Errorf("index %q: ts column %q is %v, want bigint or timestamp", ck.GetIndexName(), ts, col.typ)
			}
		}
		def := fmt.Sprintf("%q/%q", ck.GetColName(), ck.GetTsName())
		if ck.GetFlag() == 0 {
			if seenDef[def] {
				return fmt.Errorf("index %q duplicates another index on the same key and ts", ck.GetIndexName())
			}
			seenDef[def] = true
		}
		if ck.Ttl == nil {
			ck.Ttl = &commonpb.TTLSt{TtlType: typepb.TTLType_kAbsoluteTime.Enum(), AbsTtl: proto.Uint64(0), LatTtl: proto.Uint64(0)}
		}
	}
	if info.StorageMode == nil {
		info.StorageMode = commonpb.StorageMode_kMemory.Enum()
	}
	if info.FormatVersion == nil {
		info.FormatVersion = proto.Uint32(1)
	}
	return nil
}

func (c *Cluster) dropPartitions(t *table) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for pid, reps := range t.replicas {
		for _, ti := range reps {
			c.tablets[ti].removePartition(t.tid, uint32(pid))
		}
	}
}

func (c *Cluster) dropTable(_ context.Context, req *nspb.DropTableRequest) (*nspb.GeneralResponse, *rpcError) {
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	t, err := c.lookup(req.GetDb(), req.GetName())
	if err != nil {
		return generalResp(codeTableNotExist, "table does not exist"), nil
	}
	if c.zkc != nil {
		p := path.Join(c.paths.tableData, strconv.FormatUint(uint64(t.tid), 10))
		if err := c.zkc.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return generalResp(codeSetZKFailed, fmt.Sprintf("delete %s: %v", p, err)), nil
		}
	}
	c.mu.Lock()
	delete(c.tables, t.tid)
	delete(c.byName, t.db+"\x00"+t.name)
	c.mu.Unlock()
	c.dropPartitions(t)
	if c.zkc != nil {
		if err := bumpCounter(c.zkc, c.paths.notify); err != nil {
			return generalResp(codeSetZKFailed, err.Error()), nil
		}
	}
	c.log.Info("table dropped", "db", t.db, "table", t.name, "tid", t.tid)
	return generalResp(codeOK, ""), nil
}

func (c *Cluster) showTable(_ context.Context, req *nspb.ShowTableRequest) (*nspb.ShowTableResponse, *rpcError) {
	c.mu.RLock()
	var ts []*table
	for _, t := range c.tables {
		if req.GetShowAll() || (t.db == req.GetDb() && (req.GetName() == "" || t.name == req.GetName())) {
			ts = append(ts, t)
		}
	}
	c.mu.RUnlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].tid < ts[j].tid })
	resp := &nspb.ShowTableResponse{Code: proto.Int32(codeOK)}
	for _, t := range ts {
		resp.TableInfo = append(resp.TableInfo, t.snapshot())
	}
	return resp, nil
}

func (c *Cluster) showTablet(_ context.Context, _ *nspb.ShowTabletRequest) (*nspb.ShowTabletResponse, *rpcError) {
	resp := &nspb.ShowTabletResponse{Code: proto.Int32(codeOK)}
	for _, t := range c.tablets {
		state := tabletStateHealthy
		if t.stopped.Load() {
			state = tabletStateOffline
		}
		resp.Tablets = append(resp.Tablets, &nspb.TabletStatus{
			Endpoint: proto.String(t.endpoint),
			State:    proto.String(state),
			Age:      proto.Int64(time.Since(t.started).Milliseconds()),
		})
	}
	return resp, nil
}
