package connect

import (
	"errors"
	"strconv"
)

// FieldError is a record that does not match its envelope or schema. Field is the path of the
// offending value ("c2_int32", "address.zip", "tags[3]"), empty when the problem is the document
// itself (not an envelope, malformed JSON outside any field). Reason says what is wrong.
type FieldError struct {
	Field  string
	Reason string
}

// Error renders `field "c2_int32": value 3.5 is not an integer`, or just the reason when no
// field is involved.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + strconv.Quote(e.Field) + ": " + e.Reason
}

// SchemaError is a schema node that JsonConverter (or this package, where it is stricter) refuses.
// Field is the path of the node inside the schema, empty for the top level.
type SchemaError struct {
	Field  string
	Reason string
}

// Error renders `schema field "c1": Unknown schema type: int128`.
func (e *SchemaError) Error() string {
	if e.Field == "" {
		return "schema: " + e.Reason
	}
	return "schema field " + strconv.Quote(e.Field) + ": " + e.Reason
}

// errEnvelope is JsonConverter's own wording for a value that is not a schema+payload envelope.
const errEnvelope = `JsonConverter with schemas.enable requires "schema" and "payload" fields and may not contain additional fields`

// within prefixes the path of a nested error with the name of the member that holds it.
func within(err error, name string) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.Field = joinPath(name, fe.Field)
		return fe
	}
	var se *SchemaError
	if errors.As(err, &se) {
		se.Field = joinPath(name, se.Field)
		return se
	}
	return err
}

func joinPath(name, sub string) string {
	switch {
	case sub == "":
		return name
	case sub[0] == '[':
		return name + sub
	}
	return name + "." + sub
}
