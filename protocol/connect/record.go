package connect

// Record is one decoded Connect JSON value. Reuse a Record across Parse calls: its slices keep
// their capacity, so a record of a known schema decodes without allocating for its top level.
type Record struct {
	// Schema is the top-level struct schema, shared with every record of the same schema text;
	// nil when the envelope's schema is JSON null (a schemaless payload).
	Schema *Schema
	// Values holds one value per Schema.Fields, in schema order, with defaults and nulls
	// resolved. Nil when Schema is nil or Null is set.
	Values []Value
	// Null is set when the payload is JSON null under an optional struct schema.
	Null bool
	// Payload is the payload's JSON text, aliasing the parsed input.
	Payload []byte
	// Extra lists payload members the schema does not declare. JsonConverter ignores them; a
	// caller writing into a fixed table may refuse them.
	Extra []string

	present []bool
}

func (r *Record) reset() {
	r.Schema, r.Null, r.Payload = nil, false, nil
	r.Values = r.Values[:0]
	r.Extra = r.Extra[:0]
}

// sized makes Values and the presence scratch hold n entries, reusing their storage.
func (r *Record) sized(n int) {
	if cap(r.Values) < n {
		r.Values = make([]Value, n)
		r.present = make([]bool, n)
	}
	r.Values = r.Values[:n]
	if cap(r.present) < n {
		r.present = make([]bool, n)
	}
	r.present = r.present[:n]
}
