package tee

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

// maxPlans bounds the per-schema plans a Converter keeps; beyond it the map starts over.
const maxPlans = 64

// ConvertOptions tunes a Converter.
type ConvertOptions struct {
	// Fields, when not empty, is the projection (fields.whitelist): only these record fields are
	// written; other fields are ignored, and columns not listed are filled as if the field were
	// missing. Every listed name must be a column.
	Fields []string
}

// Converter turns decoded records into rows of one existing table. Matching is by name: each
// record field goes into the column of the same name; a column without a field gets its default
// or NULL. Nothing is truncated or rounded away silently: every value that does not fit its
// column makes the record invalid. A Converter is safe for concurrent use.
type Converter struct {
	cols     []openmldb.Column
	byName   map[string]int
	defaults []openmldb.Value // per column; Valid=false when the column has no default
	project  map[string]bool  // nil: every field

	json    *plan                // schemaless records, against a schema derived from the columns
	last    atomic.Pointer[plan] // plan of the previous record's schema
	mu      sync.Mutex           // guards plans
	plans   map[*connect.Schema]*plan
	scratch sync.Pool // *connect.Record for ConvertJSON
}

// plan is how the records of one schema fill the table's columns.
type plan struct {
	schema *connect.Schema
	err    error       // every record of this schema is refused for this reason
	cols   []colSource // one per table column
	// nullReason is the message for a null in a NOT NULL column.
	nullReason string
}

// colSource says where a column's value comes from.
type colSource struct {
	field int  // index into Record.Values; -1 when the record has no such field
	conv  conv // how to convert it
	src   connect.Type
}

// NewConverter prepares conversion into a table with columns cols. It fails when a column's
// default is unreadable or a projected field has no column.
func NewConverter(cols []openmldb.Column, opts ConvertOptions) (*Converter, error) {
	c := &Converter{
		cols:     cols,
		byName:   make(map[string]int, len(cols)),
		defaults: make([]openmldb.Value, len(cols)),
		plans:    make(map[*connect.Schema]*plan),
	}
	c.scratch.New = func() any { return new(connect.Record) }
	for i, col := range cols {
		if _, dup := c.byName[col.Name]; dup {
			return nil, fmt.Errorf("table has two columns named %q", col.Name)
		}
		c.byName[col.Name] = i
		if col.Default != nil {
			v, err := parseDefault(col)
			if err != nil {
				return nil, err
			}
			c.defaults[i] = v
		}
	}
	if len(opts.Fields) > 0 {
		c.project = make(map[string]bool, len(opts.Fields))
		for _, f := range opts.Fields {
			if _, ok := c.byName[f]; !ok {
				return nil, fmt.Errorf("projected field %q is not a column of the table", f)
			}
			c.project[f] = true
		}
	}
	js, err := c.jsonSchema()
	if err != nil {
		return nil, err
	}
	c.json = c.buildPlan(js)
	if c.json.err != nil {
		return nil, c.json.err
	}
	c.json.nullReason = "null or missing value for NOT NULL column"
	return c, nil
}

// jsonSchema is the schema schemaless records are read with: one optional field per (projected)
// column, typed so the decoder does the JSON-level checks and the converter the column-level ones.
// A column's default becomes the field's default, so a null or missing member takes it, as
// JsonConverter's replace.null.with.default does with schema defaults.
func (c *Converter) jsonSchema() (*connect.Schema, error) {
	var fields []*connect.Schema
	for _, col := range c.cols {
		if c.project != nil && !c.project[col.Name] {
			continue
		}
		f := &connect.Schema{Optional: true, Field: col.Name}
		switch col.Type {
		case openmldb.TypeBool:
			f.Type = connect.TypeBoolean
		case openmldb.TypeSmallInt, openmldb.TypeInt, openmldb.TypeBigInt:
			f.Type = connect.TypeInt64 // range-checked against the column, with the column's name in the message
		case openmldb.TypeTimestamp:
			f.Type, f.Logical = connect.TypeInt64, connect.LogicalTimestamp
		case openmldb.TypeFloat:
			f.Type = connect.TypeFloat
		case openmldb.TypeDouble:
			f.Type = connect.TypeDouble
		case openmldb.TypeDate, openmldb.TypeVarchar, openmldb.TypeString:
			f.Type = connect.TypeString
		default:
			return nil, fmt.Errorf("column %q has type %s, which the tee cannot write", col.Name, col.Type)
		}
		if d := c.defaults[c.byName[col.Name]]; d.Valid {
			f.Default = connectDefault(col.Type, d)
		}
		fields = append(fields, f)
	}
	return connect.NewStruct(fields...)
}

// planFor returns the plan for a record schema, building it on first sight.
func (c *Converter) planFor(s *connect.Schema) *plan {
	if p := c.last.Load(); p != nil && p.schema == s {
		return p
	}
	c.mu.Lock()
	p, ok := c.plans[s]
	if !ok {
		p = c.buildPlan(s)
		if len(c.plans) >= maxPlans {
			clear(c.plans)
		}
		c.plans[s] = p
	}
	c.mu.Unlock()
	c.last.Store(p)
	return p
}

func (c *Converter) buildPlan(s *connect.Schema) *plan {
	p := &plan{schema: s, cols: make([]colSource, len(c.cols)), nullReason: "null value for NOT NULL column"}
	for i := range p.cols {
		p.cols[i].field = -1
	}
	for fi, f := range s.Fields {
		if c.project != nil && !c.project[f.Field] {
			continue
		}
		ci, ok := c.byName[f.Field]
		if !ok {
			p.err = &RecordError{Field: f.Field, Reason: "the table has no such column"}
			return p
		}
		cv, err := chooseConv(f, c.cols[ci].Type)
		if err != nil {
			p.err = &RecordError{Field: f.Field, Reason: err.Error()}
			return p
		}
		p.cols[ci] = colSource{field: fi, conv: cv, src: f.Type}
	}
	for ci, src := range p.cols {
		col := &c.cols[ci]
		if src.field < 0 && col.NotNull && !c.defaults[ci].Valid {
			p.err = &RecordError{Field: col.Name, Reason: "missing value for NOT NULL column"}
			return p
		}
	}
	return p
}

// connectDefault expresses a column default as the value the schemaless decoder would produce.
func connectDefault(t openmldb.DataType, d openmldb.Value) *connect.Value {
	switch t {
	case openmldb.TypeBool:
		return &connect.Value{Kind: connect.KindBool, Bool: d.B}
	case openmldb.TypeFloat, openmldb.TypeDouble:
		return &connect.Value{Kind: connect.KindFloat, Float: d.F}
	case openmldb.TypeDate:
		y, m, dd := openmldb.UnpackDate(int32(d.I))
		return &connect.Value{Kind: connect.KindString, Str: fmt.Sprintf("%04d-%02d-%02d", y, m, dd)}
	case openmldb.TypeVarchar, openmldb.TypeString:
		return &connect.Value{Kind: connect.KindString, Str: d.S}
	}
	return &connect.Value{Kind: connect.KindInt, Int: d.I}
}

// Convert turns a record decoded from a Connect envelope into a row of the table, reusing dst's
// storage. A record with a null schema is read as schemaless JSON (see ConvertJSON). Errors are
// *RecordError.
func (c *Converter) Convert(rec *connect.Record, dst openmldb.Row) (openmldb.Row, error) {
	if rec.Schema == nil {
		return c.ConvertJSON(rec.Payload, dst)
	}
	if rec.Null {
		return dst[:0], &RecordError{Reason: "record payload is null"}
	}
	p := c.planFor(rec.Schema)
	if p.err != nil {
		return dst[:0], p.err
	}
	if err := c.checkExtra(rec.Extra, "the record's schema does not declare it"); err != nil {
		return dst[:0], err
	}
	return c.fill(p, rec.Values, dst)
}

// ConvertJSON turns a schemaless record (a JSON object of field → value) into a row of the
// table, reading each member as its column's type. Integers must be whole numbers within the
// column's range, DATE takes "YYYY-MM-DD", TIMESTAMP takes epoch ms. Errors are *RecordError.
func (c *Converter) ConvertJSON(value []byte, dst openmldb.Row) (openmldb.Row, error) {
	rec := c.scratch.Get().(*connect.Record)
	defer c.scratch.Put(rec)
	if err := connect.ParsePayload(c.json.schema, value, rec); err != nil {
		return dst[:0], AsRecordError(err)
	}
	if rec.Null {
		return dst[:0], &RecordError{Reason: "record value is null"}
	}
	if err := c.checkExtra(rec.Extra, "the table has no such column"); err != nil {
		return dst[:0], err
	}
	return c.fill(c.json, rec.Values, dst)
}

// checkExtra refuses payload members that would be dropped silently. With a projection, members
// outside it are meant to be dropped.
func (c *Converter) checkExtra(extra []string, reason string) error {
	for _, name := range extra {
		if c.project == nil || c.project[name] {
			return &RecordError{Field: name, Reason: reason}
		}
	}
	return nil
}

func (c *Converter) fill(p *plan, vals []connect.Value, dst openmldb.Row) (openmldb.Row, error) {
	if cap(dst) < len(c.cols) {
		dst = make(openmldb.Row, len(c.cols))
	}
	dst = dst[:len(c.cols)]
	for ci := range p.cols {
		src := &p.cols[ci]
		col := &c.cols[ci]
		if src.field < 0 {
			dst[ci] = c.defaults[ci] // the zero Value is NULL; NOT NULL without default was refused in the plan
			continue
		}
		v := &vals[src.field]
		if v.Kind == connect.KindNull {
			if col.NotNull {
				return dst[:0], &RecordError{Field: col.Name, Reason: p.nullReason}
			}
			dst[ci] = openmldb.Value{}
			continue
		}
		cv, err := cell(src.conv, src.src, col.Type, v)
		if err != nil {
			return dst[:0], &RecordError{Field: col.Name, Reason: err.Error()}
		}
		dst[ci] = cv
	}
	return dst, nil
}
