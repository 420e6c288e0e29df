package connect

import (
	"fmt"
	"strconv"
)

// Type is a Connect schema type, named in schema JSON as by JsonConverter.
type Type uint8

// Connect schema types.
const (
	TypeBoolean Type = iota + 1
	TypeInt8
	TypeInt16
	TypeInt32
	TypeInt64
	TypeFloat  // 32-bit
	TypeDouble // 64-bit
	TypeBytes
	TypeString
	TypeArray
	TypeMap
	TypeStruct
)

var typeNames = [...]string{
	TypeBoolean: "boolean", TypeInt8: "int8", TypeInt16: "int16", TypeInt32: "int32",
	TypeInt64: "int64", TypeFloat: "float", TypeDouble: "double", TypeBytes: "bytes",
	TypeString: "string", TypeArray: "array", TypeMap: "map", TypeStruct: "struct",
}

// String returns the schema JSON name of the type ("int32", "double", …).
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

func typeByName(name string) (Type, bool) {
	for t, n := range typeNames {
		if n == name && n != "" {
			return Type(t), true
		}
	}
	return 0, false
}

// Logical is a Connect logical type, selected by the schema's name.
type Logical uint8

// Logical types known to JsonConverter.
const (
	LogicalNone      Logical = iota
	LogicalDate              // days since 1970-01-01 (int32; int64 accepted, as OpenMLDB's demo message uses it)
	LogicalTime              // ms since midnight, 0..86 400 000
	LogicalTimestamp         // ms since the epoch, UTC
	LogicalDecimal           // unscaled integer with Schema.Scale
)

// Schema names of the logical types.
const (
	NameDate      = "org.apache.kafka.connect.data.Date"
	NameTime      = "org.apache.kafka.connect.data.Time"
	NameTimestamp = "org.apache.kafka.connect.data.Timestamp"
	NameDecimal   = "org.apache.kafka.connect.data.Decimal"
)

// Decimal parameter names.
const (
	ParamScale     = "scale"
	ParamPrecision = "connect.decimal.precision"
)

// Schema is one parsed Connect schema node. Schemas returned by Parser are shared between records
// and goroutines and must not be modified.
type Schema struct {
	Type       Type
	Logical    Logical
	Optional   bool
	Default    *Value // the default converted with this schema; nil when none (or JSON null)
	Name       string
	Version    int64
	Doc        string
	Parameters map[string]string
	Field      string    // member name, for the fields of a struct
	Items      *Schema   // array elements
	Keys       *Schema   // map keys
	Values     *Schema   // map values
	Fields     []*Schema // struct members, in order
	Scale      int32     // Decimal scale
	Precision  int32     // Decimal connect.decimal.precision; 0 when absent

	index map[string]int // struct: field name → position
	// plainName: Field needs no escaping in JSON, so a member name written as exactly its bytes
	// between quotes can be matched without decoding it.
	plainName bool
}

// FieldIndex returns the position of the struct field called name, or -1.
func (s *Schema) FieldIndex(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// isPlainName reports whether name is written in JSON as its own bytes (no escapes needed).
func isPlainName(name string) bool {
	for i := 0; i < len(name); i++ {
		if !plainStringByte[name[i]] {
			return false
		}
	}
	return true
}

// lookup finds the field named by raw member-name bytes without allocating; hint is the position
// expected when members arrive in schema order, the common case.
func (s *Schema) lookup(name []byte, hint int) int {
	if hint < len(s.Fields) && s.Fields[hint].Field == string(name) {
		return hint
	}
	if i, ok := s.index[string(name)]; ok {
		return i
	}
	return -1
}

// NewStruct builds a struct schema from field schemas (each with Field set), for callers that
// apply a fixed schema to schemaless payloads (see ParsePayload).
func NewStruct(fields ...*Schema) (*Schema, error) {
	s := &Schema{Type: TypeStruct, Fields: fields, index: make(map[string]int, len(fields))}
	for i, f := range fields {
		if _, dup := s.index[f.Field]; dup {
			return nil, &SchemaError{Field: f.Field, Reason: "duplicate field name"}
		}
		s.index[f.Field] = i
		f.plainName = isPlainName(f.Field)
	}
	return s, nil
}

// schemaFromNode converts a schema JSON node, with JsonConverter's rules and messages.
func schemaFromNode(n *node, depth int) (*Schema, error) {
	if depth > maxDepth {
		return nil, &SchemaError{Reason: fmt.Sprintf("nesting deeper than %d", maxDepth)}
	}
	if n.kind != '{' {
		return nil, &SchemaError{Reason: "schema must be a JSON object"}
	}
	t := n.get("type")
	if t == nil || t.kind != '"' {
		return nil, &SchemaError{Reason: "Schema must contain 'type' field"}
	}
	typ, ok := typeByName(t.str)
	if !ok {
		return nil, &SchemaError{Reason: "Unknown schema type: " + t.str}
	}
	s := &Schema{Type: typ}
	if o := n.get("optional"); o != nil && o.kind == 't' {
		s.Optional = true
	}
	if v := n.get("name"); v != nil {
		if v.kind != '"' {
			return nil, &SchemaError{Reason: "Schema name must be a string"}
		}
		s.Name = v.str
	}
	if v := n.get("version"); v != nil {
		ver, err := strconv.ParseInt(string(v.raw), 10, 64)
		if v.kind != '0' || err != nil {
			return nil, &SchemaError{Reason: "Schema version must be an integer, got " + shown(v.raw)}
		}
		s.Version = ver
	}
	if v := n.get("doc"); v != nil {
		if v.kind != '"' {
			return nil, &SchemaError{Reason: "Schema doc must be a string"}
		}
		s.Doc = v.str
	}
	if v := n.get("parameters"); v != nil {
		if v.kind != '{' {
			return nil, &SchemaError{Reason: "Schema parameters must be a JSON object"}
		}
		s.Parameters = make(map[string]string, len(v.keys))
		for i, k := range v.keys {
			if v.vals[i].kind != '"' {
				return nil, &SchemaError{Reason: "Schema parameters must have string values"}
			}
			s.Parameters[k] = v.vals[i].str
		}
	}
	if err := s.children(n, depth); err != nil {
		return nil, err
	}
	if err := s.logical(); err != nil {
		return nil, err
	}
	if d := n.get("default"); d != nil {
		v := new(Value)
		end, err := decodeValue(s, d.raw, 0, v, depth)
		if err == nil && end != len(d.raw) {
			err = syntaxErr(end, "trailing data")
		}
		if err != nil {
			return nil, &SchemaError{Reason: "invalid default value: " + err.Error()}
		}
		s.Default = v
	}
	return s, nil
}

func (s *Schema) children(n *node, depth int) error {
	switch s.Type {
	case TypeArray:
		items := n.get("items")
		if items == nil {
			return &SchemaError{Reason: "Array schema did not specify the element type"}
		}
		is, err := schemaFromNode(items, depth+1)
		if err != nil {
			return within(err, "[items]")
		}
		s.Items = is
	case TypeMap:
		keys, values := n.get("keys"), n.get("values")
		if keys == nil || values == nil {
			return &SchemaError{Reason: "Map schema did not specify the key or value type"}
		}
		ks, err := schemaFromNode(keys, depth+1)
		if err != nil {
			return within(err, "[keys]")
		}
		vs, err := schemaFromNode(values, depth+1)
		if err != nil {
			return within(err, "[values]")
		}
		s.Keys, s.Values = ks, vs
	case TypeStruct:
		fields := n.get("fields")
		if fields == nil || fields.kind != '[' {
			return &SchemaError{Reason: `Struct schema's "fields" argument is not an array`}
		}
		s.Fields = make([]*Schema, 0, len(fields.elems))
		s.index = make(map[string]int, len(fields.elems))
		for i, fn := range fields.elems {
			var name *node
			if fn.kind == '{' {
				name = fn.get("field")
			}
			if name == nil || name.kind != '"' {
				return &SchemaError{Reason: fmt.Sprintf("Struct schema's field %d has no \"field\" name", i)}
			}
			fs, err := schemaFromNode(fn, depth+1)
			if err != nil {
				return within(err, name.str)
			}
			fs.Field = name.str
			if _, dup := s.index[fs.Field]; dup {
				return &SchemaError{Field: fs.Field, Reason: "duplicate field name"}
			}
			s.index[fs.Field] = i
			fs.plainName = isPlainName(fs.Field)
			s.Fields = append(s.Fields, fs)
		}
	}
	return nil
}

// logical recognises the four logical type names. JsonConverter keys on the name; the base type
// is checked here so a value's meaning is never ambiguous.
func (s *Schema) logical() error {
	switch s.Name {
	case NameDate, NameTime, NameTimestamp:
		if s.Type != TypeInt32 && s.Type != TypeInt64 {
			return &SchemaError{Reason: fmt.Sprintf("logical type %s needs type int32 or int64, got %s", s.Name, s.Type)}
		}
		s.Logical = map[string]Logical{NameDate: LogicalDate, NameTime: LogicalTime, NameTimestamp: LogicalTimestamp}[s.Name]
	case NameDecimal:
		if s.Type != TypeBytes {
			return &SchemaError{Reason: "logical type " + NameDecimal + " needs type bytes, got " + s.Type.String()}
		}
		scale, ok := s.Parameters[ParamScale]
		if !ok {
			return &SchemaError{Reason: "Invalid Decimal schema: scale parameter not found."}
		}
		v, err := strconv.ParseInt(scale, 10, 32)
		if err != nil {
			return &SchemaError{Reason: "Invalid Decimal schema: scale " + strconv.Quote(scale) + " is not an int32"}
		}
		s.Scale = int32(v)
		if p, ok := s.Parameters[ParamPrecision]; ok {
			v, err := strconv.ParseInt(p, 10, 32)
			if err != nil || v <= 0 {
				return &SchemaError{Reason: "Invalid Decimal schema: precision " + strconv.Quote(p) + " is not a positive int32"}
			}
			s.Precision = int32(v)
		}
		s.Logical = LogicalDecimal
	}
	return nil
}
