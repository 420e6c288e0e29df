package openmldb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// TableSpec describes a table to create.
type TableSpec struct {
	DB      string
	Name    string
	Columns []Column
	// Indexes are optional; none means the nameserver's default rule (key = first column that is
	// not float/double, no TS column, keep forever). Index names may be empty.
	Indexes []Index
	// PartitionNum and ReplicaNum of 0 let the nameserver choose (its --partition_num and
	// min(--replica_num, healthy tablets)).
	PartitionNum uint32
	ReplicaNum   uint32
	IfNotExists  bool
}

// nsResponse is a nameserver answer with the usual code and message.
type nsResponse interface {
	proto.Message
	GetCode() int32
	GetMsg() string
}

// nsCall runs one nameserver RPC that answers GeneralResponse (nsCallInto).
func (c *Client) nsCall(ctx context.Context, method string, req proto.Message) (*nspb.GeneralResponse, error) {
	resp := &nspb.GeneralResponse{}
	if err := c.nsCallInto(ctx, method, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// nsCallInto runs one nameserver RPC into resp, re-resolving the leader once when the nameserver
// says it is not the leader (300) or is unreachable.
func (c *Client) nsCallInto(ctx context.Context, method string, req proto.Message, resp nsResponse) error {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		addr, err := c.nameserver(ctx)
		if err != nil {
			return err
		}
		proto.Reset(resp)
		err = c.pool.call(ctx, addr, NameServerService, method, req, resp)
		var ce *ConnError
		switch {
		case err == nil && resp.GetCode() == CodeNameserverNotLead:
			lastErr = &ServerError{Method: method, Code: resp.GetCode(), Msg: resp.GetMsg()}
		case err != nil && errors.As(err, &ce) && ctx.Err() == nil:
			lastErr = err
		case err != nil:
			return err
		default:
			return nil
		}
		if c.zk == nil {
			break
		}
		if rerr := c.Refresh(ctx); rerr != nil {
			return fmt.Errorf("%w (refresh: %v)", lastErr, rerr)
		}
	}
	return lastErr
}

// Databases lists the databases the nameserver knows.
func (c *Client) Databases(ctx context.Context) ([]string, error) {
	resp := &nspb.ShowDatabaseResponse{}
	if err := c.nsCallInto(ctx, "ShowDatabase", &nspb.GeneralRequest{}, resp); err != nil {
		return nil, fmt.Errorf("show databases: %w", err)
	}
	if resp.GetCode() != 0 {
		return nil, fmt.Errorf("show databases: %w", &ServerError{Method: "ShowDatabase", Code: resp.GetCode(), Msg: resp.GetMsg()})
	}
	return resp.GetDb(), nil
}

// CreateDatabase creates db; with ifNotExists an existing database is not an error.
func (c *Client) CreateDatabase(ctx context.Context, db string, ifNotExists bool) error {
	resp, err := c.nsCall(ctx, "CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String(db), IfNotExists: proto.Bool(ifNotExists)})
	if err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	if code := resp.GetCode(); code != 0 && !(ifNotExists && code == CodeDatabaseExists) {
		return fmt.Errorf("create database %s: %w", db, &ServerError{Method: "CreateDatabase", Code: code, Msg: resp.GetMsg()})
	}
	return nil
}

// DropDatabase drops an (empty) database.
func (c *Client) DropDatabase(ctx context.Context, db string) error {
	resp, err := c.nsCall(ctx, "DropDatabase", &nspb.DropDatabaseRequest{Db: proto.String(db)})
	if err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	if resp.GetCode() != 0 {
		return fmt.Errorf("drop database %s: %w", db, &ServerError{Method: "DropDatabase", Code: resp.GetCode(), Msg: resp.GetMsg()})
	}
	return nil
}

// TableInfoOf builds the TableInfo CreateTable sends for spec, filled as the SDK's
// TransformToTableDef does (column schema for 0.9+, kMemory storage).
func TableInfoOf(spec TableSpec) (*nspb.TableInfo, error) {
	if spec.DB == "" || spec.Name == "" {
		return nil, errors.New("table spec needs a database and a name")
	}
	if len(spec.Columns) == 0 {
		return nil, fmt.Errorf("table %s.%s: no columns", spec.DB, spec.Name)
	}
	info := &nspb.TableInfo{
		Name:        proto.String(spec.Name),
		Db:          proto.String(spec.DB),
		StorageMode: commonpb.StorageMode_kMemory.Enum(),
	}
	if spec.PartitionNum > 0 {
		info.PartitionNum = proto.Uint32(spec.PartitionNum)
	}
	if spec.ReplicaNum > 0 {
		info.ReplicaNum = proto.Uint32(spec.ReplicaNum)
	}
	for _, col := range spec.Columns {
		if fixedSize(col.Type) == 0 && !col.Type.IsString() {
			return nil, fmt.Errorf("table %s.%s column %s: unsupported type %v", spec.DB, spec.Name, col.Name, col.Type)
		}
		dt := typepb.DataType(col.Type)
		cd := &commonpb.ColumnDesc{
			Name:     proto.String(col.Name),
			DataType: dt.Enum(),
			NotNull:  proto.Bool(col.NotNull),
			Schema:   &commonpb.TableColumnSchema{Type: dt.Enum(), NotNull: proto.Bool(col.NotNull)},
		}
		if col.Default != nil {
			cd.DefaultValue = proto.String(*col.Default)
		}
		info.ColumnDesc = append(info.ColumnDesc, cd)
	}
	now := time.Now().Unix()
	for i, idx := range spec.Indexes {
		name := idx.Name
		if name == "" {
			name = fmt.Sprintf("INDEX_%d_%d", i, now) // PlanAPI::GenerateName
		}
		ttlType := idx.TTL.Type
		if ttlType == 0 {
			ttlType = TTLAbsolute
		}
		ck := &commonpb.ColumnKey{
			IndexName: proto.String(name),
			ColName:   append([]string(nil), idx.Keys...),
			Ttl: &commonpb.TTLSt{
				TtlType: typepb.TTLType(ttlType).Enum(),
				AbsTtl:  proto.Uint64(idx.TTL.AbsMinutes),
				LatTtl:  proto.Uint64(idx.TTL.Latest),
			},
		}
		if idx.TS != "" {
			ck.TsName = proto.String(idx.TS)
		}
		info.ColumnKey = append(info.ColumnKey, ck)
	}
	return info, nil
}

// CreateTable creates a table and refreshes the catalog so the table is usable right after.
func (c *Client) CreateTable(ctx context.Context, spec TableSpec) (*Table, error) {
	info, err := TableInfoOf(spec)
	if err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	req := &nspb.CreateTableRequest{TableInfo: info}
	if spec.IfNotExists {
		req.CreateIfNotExist = proto.Bool(true)
	}
	resp, err := c.nsCall(ctx, "CreateTable", req)
	if err != nil {
		return nil, fmt.Errorf("create table %s.%s: %w", spec.DB, spec.Name, err)
	}
	if code := resp.GetCode(); code != 0 && !(spec.IfNotExists && code == CodeTableExists) {
		return nil, fmt.Errorf("create table %s.%s: %w", spec.DB, spec.Name, &ServerError{Method: "CreateTable", Code: code, Msg: resp.GetMsg()})
	}
	if err := c.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("create table %s.%s: refresh catalog: %w", spec.DB, spec.Name, err)
	}
	return c.Table(spec.DB, spec.Name)
}

// DropTable drops db.name and refreshes the catalog.
func (c *Client) DropTable(ctx context.Context, db, name string) error {
	resp, err := c.nsCall(ctx, "DropTable", &nspb.DropTableRequest{Name: proto.String(name), Db: proto.String(db)})
	if err != nil {
		return fmt.Errorf("drop table %s.%s: %w", db, name, err)
	}
	if resp.GetCode() != 0 {
		return fmt.Errorf("drop table %s.%s: %w", db, name, &ServerError{Method: "DropTable", Code: resp.GetCode(), Msg: resp.GetMsg()})
	}
	if err := c.Refresh(ctx); err != nil {
		return fmt.Errorf("drop table %s.%s: refresh catalog: %w", db, name, err)
	}
	return nil
}
