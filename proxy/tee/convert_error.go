package tee

import (
	"errors"
	"strconv"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

// RecordError is a record that cannot become a row of its table: the message a producer sees in
// its partition's record_errors. Field names the record field (or table column) involved, empty
// when the record as a whole is refused.
type RecordError struct {
	Field  string
	Reason string
}

// Error renders `field "c2_int32": value 3.5 is not an integer`.
func (e *RecordError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + strconv.Quote(e.Field) + ": " + e.Reason
}

// AsRecordError turns a decode error from package connect into a RecordError, keeping the field
// path and reason, so every invalid record reads the same whichever stage refused it. Other
// errors are returned unchanged.
func AsRecordError(err error) error {
	var fe *connect.FieldError
	if errors.As(err, &fe) {
		return &RecordError{Field: fe.Field, Reason: fe.Reason}
	}
	var se *connect.SchemaError
	if errors.As(err, &se) {
		return &RecordError{Field: se.Field, Reason: "invalid schema: " + se.Reason}
	}
	return err
}
