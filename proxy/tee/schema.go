package tee

import (
	"fmt"
	"strconv"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

// ColumnsFromSchema derives the columns of a table to auto-create from a record's struct schema:
// int8/int16 → SMALLINT, int32 → INT, int64 → BIGINT, float → FLOAT, double → DOUBLE, boolean →
// BOOL, string → STRING, Date → DATE, Timestamp → TIMESTAMP, Time → INT (ms of day), Decimal →
// DOUBLE when its declared precision is at most 15 digits (what a double always carries).
// bytes, array, map and nested struct fields have no OpenMLDB type and are refused. Required
// fields become NOT NULL; schema defaults become column defaults in OpenMLDB's stored text form.
// Errors are *RecordError naming the field.
func ColumnsFromSchema(s *connect.Schema) ([]openmldb.Column, error) {
	if s == nil || s.Type != connect.TypeStruct {
		return nil, &RecordError{Reason: "a table can only be created from a struct schema"}
	}
	if len(s.Fields) == 0 {
		return nil, &RecordError{Reason: "the struct schema has no fields"}
	}
	cols := make([]openmldb.Column, 0, len(s.Fields))
	for _, f := range s.Fields {
		t, err := columnType(f)
		if err != nil {
			return nil, &RecordError{Field: f.Field, Reason: err.Error()}
		}
		col := openmldb.Column{Name: f.Field, Type: t, NotNull: !f.Optional}
		if f.Default != nil && f.Default.Kind != connect.KindNull {
			text, err := defaultText(f, t, f.Default)
			if err != nil {
				return nil, &RecordError{Field: f.Field, Reason: "default: " + err.Error()}
			}
			col.Default = &text
		}
		cols = append(cols, col)
	}
	return cols, nil
}

func columnType(f *connect.Schema) (openmldb.DataType, error) {
	switch f.Logical {
	case connect.LogicalDate:
		return openmldb.TypeDate, nil
	case connect.LogicalTimestamp:
		return openmldb.TypeTimestamp, nil
	case connect.LogicalTime:
		return openmldb.TypeInt, nil
	case connect.LogicalDecimal:
		if f.Precision == 0 || f.Precision > maxLosslessDigits {
			return 0, fmt.Errorf("Decimal needs parameter %s of at most %d to be stored losslessly as DOUBLE",
				connect.ParamPrecision, maxLosslessDigits)
		}
		return openmldb.TypeDouble, nil
	}
	switch f.Type {
	case connect.TypeInt8, connect.TypeInt16:
		return openmldb.TypeSmallInt, nil
	case connect.TypeInt32:
		return openmldb.TypeInt, nil
	case connect.TypeInt64:
		return openmldb.TypeBigInt, nil
	case connect.TypeFloat:
		return openmldb.TypeFloat, nil
	case connect.TypeDouble:
		return openmldb.TypeDouble, nil
	case connect.TypeBoolean:
		return openmldb.TypeBool, nil
	case connect.TypeString:
		return openmldb.TypeString, nil
	}
	return 0, fmt.Errorf("type %s has no OpenMLDB column type", f.Type)
}

// defaultText renders a default as OpenMLDB stores it (openmldb-wire.md §6.1): numbers as text,
// dates as the packed int, timestamps as ms. Booleans are written "true"/"false": OpenMLDB's own
// reader turns only "true" into true, so a stored "1" would read back as false there.
func defaultText(f *connect.Schema, t openmldb.DataType, v *connect.Value) (string, error) {
	switch t {
	case openmldb.TypeBool:
		return strconv.FormatBool(v.Bool), nil
	case openmldb.TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 32), nil
	case openmldb.TypeString:
		return v.Str, nil
	case openmldb.TypeDate:
		d, err := dateFromDays(v.Int)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(d.I, 10), nil
	case openmldb.TypeTimestamp:
		if v.Int < 0 {
			return "", fmt.Errorf("negative timestamp %d", v.Int)
		}
		return strconv.FormatInt(v.Int, 10), nil
	case openmldb.TypeDouble:
		if f.Logical == connect.LogicalDecimal {
			d, err := decimalToDouble(v)
			if err != nil {
				return "", err
			}
			return strconv.FormatFloat(d.F, 'g', -1, 64), nil
		}
		return strconv.FormatFloat(v.Float, 'g', -1, 64), nil
	}
	return strconv.FormatInt(v.Int, 10), nil // SMALLINT, INT (also Time ms), BIGINT
}
