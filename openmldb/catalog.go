package openmldb

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// ErrTableNotFound is returned (wrapped) when the catalog has no such table.
var ErrTableNotFound = errors.New("table not found")

// ErrUnsupportedTable is returned (wrapped) for tables this client refuses to write: ARRAY/MAP
// columns (need the SDK's codegen path) or index-organized tables (clustered index).
var ErrUnsupportedTable = errors.New("unsupported table")

// Partition is one partition of a table and where its replicas live.
type Partition struct {
	PID uint32
	// Leader is the dial address of the alive leader, "" when there is none.
	Leader string
	// LeaderName is the tablet name TableInfo records for the leader.
	LeaderName string
	// Followers are dial addresses of alive followers.
	Followers []string
}

// Table is a table as the catalog knows it: schema, indexes and partition leaders.
type Table struct {
	DB             string
	Name           string
	TID            uint32
	Columns        []Column
	Indexes        []Index
	PartitionCount int
	// Partitions is indexed by pid.
	Partitions []Partition
	// Compressed reports TableInfo.compress_type == kSnappy.
	Compressed bool

	// Unsupported is set (and writes refused) when the table cannot be written by this client.
	Unsupported error

	keyCols [][]int // per index position; nil for deleted indexes
	tsOf    []int   // per index position: its TS column, or -1 (none, or a deleted index)
	tsCols  []int
	info    *nspb.TableInfo
}

// Info returns the TableInfo the table was built from. Do not modify it.
func (t *Table) Info() *nspb.TableInfo { return t.info }

// KeyPartitions returns the distinct partition ids the row's index keys hash to, with the
// dimensions (key text and index position) for each. Deleted indexes are skipped.
func (t *Table) KeyPartitions(row Row) map[uint32][]KeyDim {
	out := map[uint32][]KeyDim{}
	var buf []byte
	for idx, kc := range t.keyCols {
		if kc == nil {
			continue
		}
		buf = AppendKey(buf[:0], t.Columns, kc, row)
		key := string(buf)
		pid := PartitionOf(key, t.PartitionCount)
		out[pid] = append(out[pid], KeyDim{Key: key, Idx: uint32(idx)})
	}
	return out
}

// KeyDim is one dimension of a Put: the key text of index Idx.
type KeyDim struct {
	Key string
	Idx uint32
}

// tableFromInfo converts a TableInfo; addrOf maps tablet names to dial addresses.
func tableFromInfo(info *nspb.TableInfo, addrOf func(name string) (string, bool)) (*Table, error) {
	t := &Table{
		DB:             info.GetDb(),
		Name:           info.GetName(),
		TID:            info.GetTid(),
		PartitionCount: len(info.GetTablePartition()),
		Compressed:     info.GetCompressType() == typepb.CompressType_kSnappy,
		info:           info,
	}
	pos := map[string]int{}
	for i, cd := range info.GetColumnDesc() {
		c, err := columnFromDesc(cd)
		if err != nil && t.Unsupported == nil {
			t.Unsupported = fmt.Errorf("%w %s.%s: %v", ErrUnsupportedTable, t.DB, t.Name, err)
		}
		t.Columns = append(t.Columns, c)
		pos[c.Name] = i
	}
	tsSeen := map[int]bool{}
	for i, ck := range info.GetColumnKey() {
		idx := Index{
			Name:    ck.GetIndexName(),
			Keys:    append([]string(nil), ck.GetColName()...),
			TS:      ck.GetTsName(),
			Deleted: ck.GetFlag() != 0,
			TTL: TTL{
				Type:       TTLType(ck.GetTtl().GetTtlType()),
				AbsMinutes: ck.GetTtl().GetAbsTtl(),
				Latest:     ck.GetTtl().GetLatTtl(),
			},
		}
		t.Indexes = append(t.Indexes, idx)
		if ck.GetType() == commonpb.IndexType_kClustered && t.Unsupported == nil {
			t.Unsupported = fmt.Errorf("%w %s.%s: index %s is clustered (index-organized table)", ErrUnsupportedTable, t.DB, t.Name, idx.Name)
		}
		t.tsOf = append(t.tsOf, -1)
		if idx.Deleted {
			t.keyCols = append(t.keyCols, nil)
			continue
		}
		kc := make([]int, 0, len(idx.Keys))
		for _, k := range idx.Keys {
			p, ok := pos[k]
			if !ok {
				return nil, fmt.Errorf("table %s.%s index %d (%s): key column %q not in schema", t.DB, t.Name, i, idx.Name, k)
			}
			kc = append(kc, p)
		}
		if len(kc) == 0 {
			return nil, fmt.Errorf("table %s.%s index %d (%s) has no key columns", t.DB, t.Name, i, idx.Name)
		}
		t.keyCols = append(t.keyCols, kc)
		if idx.TS != "" {
			p, ok := pos[idx.TS]
			if !ok {
				return nil, fmt.Errorf("table %s.%s index %s: ts column %q not in schema", t.DB, t.Name, idx.Name, idx.TS)
			}
			t.tsOf[i] = p
			if !tsSeen[p] {
				tsSeen[p] = true
				t.tsCols = append(t.tsCols, p)
			}
		}
	}
	sort.Ints(t.tsCols)
	t.Partitions = make([]Partition, t.PartitionCount)
	seen := make([]bool, t.PartitionCount)
	for _, tp := range info.GetTablePartition() {
		pid := tp.GetPid()
		if int(pid) >= t.PartitionCount || seen[pid] {
			return nil, fmt.Errorf("table %s.%s: partition ids are not 0..%d (pid %d)", t.DB, t.Name, t.PartitionCount-1, pid)
		}
		seen[pid] = true
		p := Partition{PID: pid}
		for _, pm := range tp.GetPartitionMeta() {
			if !pm.GetIsAlive() {
				continue
			}
			addr, ok := addrOf(pm.GetEndpoint())
			if !ok {
				continue // not a live tablet: the SDK skips it too
			}
			if pm.GetIsLeader() {
				p.Leader, p.LeaderName = addr, pm.GetEndpoint()
			} else {
				p.Followers = append(p.Followers, addr)
			}
		}
		t.Partitions[pid] = p
	}
	return t, nil
}

// columnFromDesc converts a ColumnDesc; schema (field 6) supersedes data_type/not_null.
func columnFromDesc(cd *commonpb.ColumnDesc) (Column, error) {
	c := Column{Name: cd.GetName(), Type: DataType(cd.GetDataType()), NotNull: cd.GetNotNull()}
	if s := cd.GetSchema(); s != nil {
		if s.Type != nil {
			c.Type = DataType(s.GetType())
		}
		c.NotNull = s.GetNotNull()
	}
	if cd.DefaultValue != nil {
		d := cd.GetDefaultValue()
		c.Default = &d
	}
	if fixedSize(c.Type) == 0 && !c.Type.IsString() {
		return c, fmt.Errorf("column %s has type %s, which the classic row codec cannot encode", c.Name, typeName(c.Type))
	}
	return c, nil
}

func typeName(t DataType) string {
	switch t {
	case 15:
		return "ARRAY"
	case 16:
		return "MAP"
	}
	return t.String()
}

// catalog is an immutable snapshot of the cluster's metadata.
type catalog struct {
	tablets    map[string]string // tablet name -> dial address
	tables     map[string]*Table // "db.name" -> table
	nameserver string            // dial address of the nameserver leader ("" unknown)
	gen        uint64            // load order: a snapshot never replaces a newer one
}

func tableKey(db, name string) string { return db + "." + name }

func buildCatalog(tablets map[string]string, infos []*nspb.TableInfo, ns string) (*catalog, []error) {
	c := &catalog{tablets: tablets, tables: map[string]*Table{}, nameserver: ns}
	addrOf := func(name string) (string, bool) { a, ok := tablets[name]; return a, ok }
	var errs []error
	for _, info := range infos {
		t, err := tableFromInfo(info, addrOf)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.tables[tableKey(t.DB, t.Name)] = t
	}
	return c, errs
}

// tableNames lists the catalog's tables as db.name, sorted.
func (c *catalog) tableNames() []string {
	out := make([]string, 0, len(c.tables))
	for k := range c.tables {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// stripTabletPrefix removes the nearline-tablet prefix from a /nodes child name.
func stripTabletPrefix(name string) string { return strings.TrimPrefix(name, "NLTABLET_") }

// Validate checks row against everything Write checks before sending (column count, NOT NULL,
// value ranges, dates, TS columns of live indexes, non-negative timestamps, unsupported tables),
// without encoding or sending anything. Errors wrap ErrRow (a *ColumnError names the column) or
// ErrUnsupportedTable.
func (t *Table) Validate(row Row) error {
	if t.Unsupported != nil {
		return t.Unsupported
	}
	if err := ValidateRow(t.Columns, t.tsCols, row); err != nil {
		return err
	}
	for i := range t.Columns {
		c, v := &t.Columns[i], &row[i]
		if !v.Valid {
			if c.NotNull {
				return &ColumnError{Column: c.Name, Reason: "NULL in a NOT NULL column"}
			}
			continue
		}
		if err := checkValue(c, v); err != nil {
			return err
		}
	}
	return nil
}

// TSColumns returns the schema positions of the TS columns of live indexes.
func (t *Table) TSColumns() []int { return append([]int(nil), t.tsCols...) }
