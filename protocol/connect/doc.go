// Package connect reads Kafka Connect JSON records the way Apache Kafka's JsonConverter does
// (schemas.enable=true): an envelope {"schema": …, "payload": …} whose schema describes a struct,
// converted into typed values without building a generic map.
//
// Where the reference silently loses data this package is stricter: a fraction into an integer
// type, an integer overflowing int8/int16/int32/int64, a float overflowing float/double, a
// non-boolean for a boolean or a non-string for a string are errors, never truncated, wrapped or
// nulled. A number written with a fraction or exponent is accepted for an integer type only when
// its value is whole (3.0, 12e2). Duplicate payload members are refused (Jackson keeps the last).
//
// Payload members the schema does not declare are skipped, as JsonConverter does, and their
// names reported in Record.Extra: whether they are an error is the caller's decision (the
// OpenMLDB tee refuses them, since they would be dropped silently).
//
// Logical types are selected by schema name: Date (int32 or int64 days; int64 because OpenMLDB's
// demo message declares it so), Time (int32 or int64 ms of day, 0..86 400 000), Timestamp (int32
// or int64 epoch ms) and Decimal (bytes with a "scale" parameter; payload base64 of the
// big-endian two's-complement unscaled value, or a JSON number that keeps its own scale).
//
// A null schema leaves the payload in Record.Payload for schemaless handling; ParsePayload reads
// a bare JSON object against a schema the caller supplies (a table's columns, or KIP-1054's
// schema.content).
//
// The schema text repeats in every record of a topic, so Parser caches parsed schemas by their
// exact bytes; a record whose schema is byte-identical to the previous one costs one memcmp.
//
// The package knows Kafka Connect only; mapping values to database columns is the caller's job.
package connect
