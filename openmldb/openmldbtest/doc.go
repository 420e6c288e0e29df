// Package openmldbtest runs an in-process, OpenMLDB-compatible cluster for tests and demos, in the
// spirit of net/http/httptest: one call to Start gives a nameserver and N tablets on loopback ports,
// speaking brpc's baidu_std protocol with OpenMLDB's own protobuf messages and registering in
// ZooKeeper exactly as OpenMLDB does (or standalone, with no ZooKeeper).
//
// It is deliberately stricter than OpenMLDB so that client bugs surface: every Put's row is decoded
// against the schema (the size header must match, every field must be readable, NOT NULL honoured),
// every dimension key must equal the key rebuilt from the decoded row and hash to the partition the
// request was sent to, followers answer 103, and NULL or negative timestamps are refused.
//
// By default it applies the pipelined requests of one connection in the order they arrive
// (outside stalls), so tests that read back insertion order check the order a client issues its
// Puts in. brpc runs all but the last request of one socket read concurrently;
// Options.ConcurrentReads does the same, for tests of what a client must do about that.
//
// The row decoder, key builder, hash and framing here are written independently of the client in
// package openmldb, so a symmetric bug in both cannot hide; both are checked against the golden
// vectors in the repository's shared reference material.
package openmldbtest
