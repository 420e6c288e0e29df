// Package config loads the proxy's settings with koanf: a YAML file (--config), then environment
// variables (OKP_ prefix, "__" between nesting levels: OKP_KAFKA__BOOTSTRAP is kafka.bootstrap),
// then command-line flags. Every key is also a flag of the same dotted name (--kafka.bootstrap).
// Lists are comma-separated in the environment and in flags.
//
// To add a key: add a field with a koanf tag to Config (or a nested struct), a flag in
// registerFlags with the same dotted name and its default, and a check in Validate.
package config

import (
	"log/slog"
	"time"

	"github.com/spf13/pflag"
)

// Defaults.
const (
	DefaultListen        = "127.0.0.1:9093"
	DefaultMaxFrameBytes = 100 << 20
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "text"
	DefaultZKPath        = "/openmldb"
	// DefaultTransactionMaxTimeout is Kafka's default transaction.max.timeout.ms.
	DefaultTransactionMaxTimeout = 15 * time.Minute
	DefaultOpenMLDBUser          = "root"
)

// Config is the whole configuration of the proxy.
type Config struct {
	// Listen is the client-facing bootstrap address (host:port).
	Listen string `koanf:"listen"`
	// AdvertisedHost is the host clients are told to dial in every broker address the proxy hands
	// out; defaults to the host of Listen.
	AdvertisedHost string `koanf:"advertised_host"`
	// BrokerPorts overrides the port of the per-broker listener for some node ids (node id → port).
	// A node id not listed gets the port of Listen + 1 + node id. Written as "id=port" pairs
	// (flag/env: "0=19094,1=19095"; YAML: a list of such strings or a map {0: 19094}).
	BrokerPorts map[int32]int `koanf:"-"`
	// Kafka is the upstream cluster.
	Kafka Kafka `koanf:"kafka"`
	// MaxFrameBytes is the largest request frame accepted from a client (payload, without the size
	// prefix); bigger frames close the connection.
	MaxFrameBytes int `koanf:"max_frame_bytes"`
	// TLS terminates client TLS on the proxy's listeners.
	TLS TLS `koanf:"tls"`
	// Limits bounds connections, in-flight requests and queued bytes.
	Limits Limits `koanf:"limits"`
	// Log configures log/slog output.
	Log Log `koanf:"log"`
	// Admin is the HTTP listener for metrics, health and pprof (ops.go).
	Admin Admin `koanf:"admin"`
	// Shutdown configures the drain on SIGTERM (ops.go).
	Shutdown Shutdown `koanf:"shutdown"`
	// OpenMLDB is the cluster teed rows are written to.
	OpenMLDB OpenMLDB `koanf:"openmldb"`
	// Sinks route topics into tables; topics no sink matches are never decoded.
	Sinks []Sink `koanf:"sinks"`
	// ConnectorConfig names a Kafka Connect JDBC sink .properties file imported as one more sink.
	ConnectorConfig string `koanf:"connector_config"`
	// ConnectorIgnored lists the keys of ConnectorConfig that have no effect, for one warning.
	ConnectorIgnored []string `koanf:"-"`
}

// Kafka is the upstream Kafka cluster.
type Kafka struct {
	// Bootstrap lists upstream brokers as host:port; bootstrap connections of clients go to the
	// first reachable one.
	Bootstrap []string `koanf:"bootstrap"`
	// TLS originates TLS to the brokers.
	TLS KafkaTLS `koanf:"tls"`
	// SASL authenticates the connections the proxy opens to the brokers itself.
	SASL KafkaSASL `koanf:"sasl"`
	// TransactionMaxTimeout is the brokers' transaction.max.timeout.ms: the tee drops rows held for
	// a transaction open longer than this whose EndTxn never came through the proxy (the
	// coordinator has aborted it by then).
	TransactionMaxTimeout time.Duration `koanf:"transaction_max_timeout"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `koanf:"level"`
	// Format is text or json.
	Format string `koanf:"format"`
	// Payloads includes record values in the log line of a rejected record batch.
	Payloads bool `koanf:"payloads"`
}

// registerFlags declares one flag per key with its default. Flag names are the dotted koanf keys.
func registerFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file")
	fs.String("listen", DefaultListen, "client-facing bootstrap address host:port")
	fs.String("advertised_host", "", "host clients are told to dial (default: host of --listen)")
	fs.StringSlice("broker_ports", nil, "per-broker listener ports as id=port pairs (default: listen port + 1 + node id)")
	fs.StringSlice("kafka.bootstrap", nil, "upstream brokers, comma-separated host:port")
	fs.Duration("kafka.transaction_max_timeout", DefaultTransactionMaxTimeout, "the brokers' transaction.max.timeout.ms; rows held for a transaction open longer are dropped (it was aborted)")
	fs.Int("max_frame_bytes", DefaultMaxFrameBytes, "largest request frame accepted from a client, in bytes")
	fs.String("log.level", DefaultLogLevel, "log level: debug, info, warn, error")
	fs.String("log.format", DefaultLogFormat, "log format: text or json")
	fs.String("openmldb.zk_cluster", "", "OpenMLDB ZooKeeper hosts (cluster mode), comma-separated host:port")
	fs.String("openmldb.zk_path", DefaultZKPath, "OpenMLDB root path in ZooKeeper")
	fs.String("openmldb.zk_auth", "", "ZooKeeper digest credential user:password, if the cluster uses one")
	fs.String("openmldb.nameserver", "", "OpenMLDB nameserver host:port (standalone mode, instead of ZooKeeper)")
	fs.String("openmldb.database", "", "database of the sinks' tables")
	fs.String("openmldb.user", DefaultOpenMLDBUser, "OpenMLDB user")
	fs.String("openmldb.password", "", "OpenMLDB password")
	fs.String("openmldb.journal_dir", "", "directory keeping rows of committed transactions not yet stored in OpenMLDB across restarts (default: memory only)")
	fs.String("connector_config", "", "Kafka Connect JDBC sink .properties file to import as a sink")
	registerTLSFlags(fs)
	registerSASLFlags(fs)
	registerLimitsFlags(fs)
	registerOpsFlags(fs)
}

// SlogLevel returns the slog level of Log.Level (Validate has checked it).
func (l Log) SlogLevel() slog.Level {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level))
	return lv
}
