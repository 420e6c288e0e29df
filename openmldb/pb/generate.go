// Package pb holds trimmed copies of OpenMLDB's and brpc's .proto files (same package names,
// message names and field numbers as upstream, proto2) and the Go code generated from them.
//
// Regenerate after editing a .proto (needs protoc and protoc-gen-go on PATH):
//
//	go generate ./openmldb/pb/
//
// which runs, in this directory:
//
//	protoc --proto_path=. --go_out=. --go_opt=module=github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb type.proto common.proto tablet.proto name_server.proto brpc_meta.proto
package pb

//go:generate protoc --proto_path=. --go_out=. --go_opt=module=github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb type.proto common.proto tablet.proto name_server.proto brpc_meta.proto
