package connect

import "math/big"

// Kind says which member of a Value holds its content.
type Kind uint8

// Value kinds. The schema that produced a Value says what it means (an Int may be days for a
// Date, ms for a Timestamp); Kind only says where it is stored.
const (
	KindNull    Kind = iota // no value
	KindBool                // Bool
	KindInt                 // Int: int8..int64, Date (days since epoch), Time (ms of day), Timestamp (epoch ms)
	KindFloat               // Float: float (already rounded to float32) or double
	KindString              // Str
	KindBytes               // Str holds the raw bytes
	KindDecimal             // Int (or Big) unscaled, Scale
	KindArray               // Elems, one per element
	KindMap                 // Elems, key and value alternating
	KindStruct              // Elems, one per schema field, in schema order
)

// Value is one decoded Connect value. It is a plain struct so that a record's top-level fields
// live in one reused slice; only nested containers allocate.
type Value struct {
	Kind  Kind
	Bool  bool
	Scale int32 // Decimal: the value's scale (schema scale for the bytes form, the number's own for the numeric form)
	Int   int64
	Float float64
	Str   string
	// Big holds a Decimal's unscaled value when it does not fit in Int (Int is then 0).
	Big   *big.Int
	Elems []Value
}

// IsNull reports whether the value is null.
func (v *Value) IsNull() bool { return v.Kind == KindNull }

// Unscaled returns a Decimal's unscaled value.
func (v *Value) Unscaled() *big.Int {
	if v.Big != nil {
		return new(big.Int).Set(v.Big)
	}
	return big.NewInt(v.Int)
}
