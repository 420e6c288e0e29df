package config

import (
	"fmt"

	"github.com/spf13/pflag"
)

// Default limits.
const (
	DefaultMaxConnections           = 10000
	DefaultMaxInflightPerConnection = 1024
	DefaultMaxQueuedBytes           = 512 << 20
	DefaultMaxOutboundBytes         = 64 << 20
	DefaultMaxHeldTransactionRows   = 1_000_000
)

// Limits bounds what clients can make the proxy hold. When a bound is hit the proxy stops reading
// from the client concerned (TCP backpressure) instead of buffering; only max_connections closes.
type Limits struct {
	// MaxConnections is the most client connections open at once (all listeners together);
	// further connections are closed at once with a log line. 0 means no limit.
	MaxConnections int `koanf:"max_connections"`
	// MaxInflightPerConnection is how many requests of one connection may await their responses;
	// at the bound the proxy reads nothing more from that connection until a response leaves.
	MaxInflightPerConnection int `koanf:"max_inflight_per_connection"`
	// MaxQueuedBytes bounds the request bytes held by the proxy over all connections: requests
	// awaiting their responses, including Produce requests whose OpenMLDB writes are in flight.
	// At the bound the proxy stops reading from clients until it drops.
	MaxQueuedBytes int64 `koanf:"max_queued_bytes"`
	// MaxOutboundBytesPerConnection bounds the response bytes waiting to be written to one client
	// (it does not read them); past it the proxy reads no more of its requests until it does.
	MaxOutboundBytesPerConnection int64 `koanf:"max_outbound_bytes_per_connection"`
	// MaxHeldTransactionRows bounds the rows of open Kafka transactions the tee holds until
	// their EndTxn (they are answered once held, so no other limit counts them); past it, further
	// transactional batches of teed topics are refused, retriably, before they reach the broker.
	// 0 means no limit.
	MaxHeldTransactionRows int `koanf:"max_held_transaction_rows"`
}

func registerLimitsFlags(fs *pflag.FlagSet) {
	fs.Int("limits.max_connections", DefaultMaxConnections, "most client connections open at once (0: no limit)")
	fs.Int("limits.max_inflight_per_connection", DefaultMaxInflightPerConnection, "requests of one connection awaiting responses before the proxy stops reading it")
	fs.Int64("limits.max_queued_bytes", DefaultMaxQueuedBytes, "request bytes held over all connections before the proxy stops reading clients")
	fs.Int64("limits.max_outbound_bytes_per_connection", DefaultMaxOutboundBytes, "response bytes waiting for a client that does not read before the proxy stops reading its requests")
	fs.Int("limits.max_held_transaction_rows", DefaultMaxHeldTransactionRows, "rows of open transactions held for their EndTxn before further transactional batches are refused (0: no limit)")
}

func (l Limits) validate() []error {
	var errs []error
	if l.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("limits.max_connections: %d must be 0 (no limit) or positive", l.MaxConnections))
	}
	if l.MaxInflightPerConnection < 1 {
		errs = append(errs, fmt.Errorf("limits.max_inflight_per_connection: %d must be at least 1", l.MaxInflightPerConnection))
	}
	if l.MaxQueuedBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("limits.max_queued_bytes: %d is below the 1 MiB minimum", l.MaxQueuedBytes))
	}
	if l.MaxHeldTransactionRows < 0 {
		errs = append(errs, fmt.Errorf("limits.max_held_transaction_rows: %d must be 0 (no limit) or positive", l.MaxHeldTransactionRows))
	}
	if l.MaxOutboundBytesPerConnection < 1<<20 {
		errs = append(errs, fmt.Errorf("limits.max_outbound_bytes_per_connection: %d is below the 1 MiB minimum", l.MaxOutboundBytesPerConnection))
	}
	return errs
}
