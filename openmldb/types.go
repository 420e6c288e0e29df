// Package openmldb is a native Go client for OpenMLDB's online storage: it finds the cluster in
// ZooKeeper (or through a standalone nameserver), encodes rows in OpenMLDB's row format, hashes
// index keys to partitions and sends TabletServer.Put over brpc's baidu_std protocol.
package openmldb

import "fmt"

// DataType is a column type, numbered exactly as openmldb.type.DataType on the wire.
type DataType int32

// Column types the classic row codec can encode. Array (15) and Map (16) are deliberately absent:
// tables using them are refused.
const (
	TypeBool      DataType = 1
	TypeSmallInt  DataType = 2
	TypeInt       DataType = 3
	TypeBigInt    DataType = 4
	TypeFloat     DataType = 5
	TypeDouble    DataType = 6
	TypeDate      DataType = 7
	TypeTimestamp DataType = 8
	TypeVarchar   DataType = 13
	TypeString    DataType = 14
)

// String returns the SQL name of the type.
func (t DataType) String() string {
	switch t {
	case TypeBool:
		return "BOOL"
	case TypeSmallInt:
		return "SMALLINT"
	case TypeInt:
		return "INT"
	case TypeBigInt:
		return "BIGINT"
	case TypeFloat:
		return "FLOAT"
	case TypeDouble:
		return "DOUBLE"
	case TypeDate:
		return "DATE"
	case TypeTimestamp:
		return "TIMESTAMP"
	case TypeVarchar, TypeString:
		return "STRING"
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// IsString reports whether values of the type live in the row's variable-length area.
func (t DataType) IsString() bool { return t == TypeVarchar || t == TypeString }

// Column is one column of a table, in schema order.
type Column struct {
	Name    string
	Type    DataType
	NotNull bool
	// Default is the column's default in OpenMLDB's stored text form (ints and strings as text,
	// dates as the packed int, timestamps as ms, bools as 1/0 or true/false); nil means none.
	Default *string
}

// TTLType is openmldb.type.TTLType.
type TTLType int32

// TTL kinds, numbered as on the wire.
const (
	TTLAbsolute  TTLType = 1
	TTLLatest    TTLType = 3
	TTLAbsAndLat TTLType = 4
	TTLAbsOrLat  TTLType = 5
)

// TTL is an index's expiry rule. AbsMinutes 0 and Latest 0 mean "keep forever".
type TTL struct {
	Type       TTLType
	AbsMinutes uint64
	Latest     uint64
}

// Index is one entry of TableInfo.column_key; its position in Table.Indexes is the dimension idx.
type Index struct {
	Name    string
	Keys    []string // key columns in key order
	TS      string   // TS column, "" when the index is versioned by insertion time
	TTL     TTL
	Deleted bool // flag == 1: skipped when writing, but keeps its position
}

// Value is one cell of a row. Which field carries the value depends on the column type:
// I for smallint/int/bigint/timestamp (epoch ms) and date (packed, see PackDate), F for
// float/double, S for strings, B for bool. The zero Value is NULL.
type Value struct {
	Valid bool
	I     int64
	F     float64
	S     string
	B     bool
}

// Row is one value per table column, in schema order.
type Row []Value

// Null returns a NULL value.
func Null() Value { return Value{} }

// Int returns an integer value for smallint, int, bigint or timestamp (ms) columns.
func Int(v int64) Value { return Value{Valid: true, I: v} }

// Float returns a value for float or double columns.
func Float(v float64) Value { return Value{Valid: true, F: v} }

// Str returns a value for string columns.
func Str(v string) Value { return Value{Valid: true, S: v} }

// Bool returns a value for bool columns.
func Bool(v bool) Value { return Value{Valid: true, B: v} }

// Date returns a value for date columns from a civil date.
func Date(year, month, day int) Value {
	return Value{Valid: true, I: int64(PackDate(year, month, day))}
}

// PackDate encodes a civil date the way OpenMLDB stores it: (year-1900)<<16 | (month-1)<<8 | day.
// It is not days since the epoch.
func PackDate(year, month, day int) int32 {
	return int32((year-1900)<<16 | (month-1)<<8 | day)
}

// UnpackDate is the inverse of PackDate.
func UnpackDate(v int32) (year, month, day int) {
	return int(v>>16) + 1900, int(v>>8&0xff) + 1, int(v & 0xff)
}
