package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// commands maps a subcommand name to its entry point, which gets the arguments after the name.
var commands = map[string]func(args []string) error{
	"run":     runCmd,
	"demo":    demoCmd,
	"scan":    scanCmd,
	"journal": journalCmd,
}

// overview is the top-level help: the commands, before run's flags (run is the default).
const overview = `Usage: openmldb-kafka-proxy [COMMAND] [FLAGS]

Commands:
  run      start the proxy (the default when the first argument is a flag)
  demo     an embedded Kafka broker and OpenMLDB-compatible cluster with the proxy in front
  scan     print the rows of an OpenMLDB table (DB.TABLE) as JSON lines
  journal  show and settle what a proxy's journal directory holds

"openmldb-kafka-proxy COMMAND --help" lists a command's flags; "help COMMAND" too.
`

// dispatch runs the subcommand named by args[0]; run is the default when args is empty or starts
// with a flag.
func dispatch(args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(os.Stderr, overview)
		if args[0] == "help" {
			if len(args) > 1 {
				return dispatch([]string{args[1], "--help"})
			}
			return nil
		}
		fmt.Fprintln(os.Stderr)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runCmd(args)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (want run, demo, scan or journal; \"help\" lists them)", args[0])
	}
	return cmd(args[1:])
}

// runCmd starts the proxy from the configuration and serves until SIGINT or SIGTERM (which
// drain it first); SIGHUP reloads the configuration from the same file, environment and flags.
func runCmd(args []string) error {
	cfg, err := config.LoadOS("run", args)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, level := newLoggerVar(cfg.Log)
	if len(cfg.ConnectorIgnored) > 0 {
		log.Warn("connector config keys with no effect here", "file", cfg.ConnectorConfig, "keys", strings.Join(cfg.ConnectorIgnored, ","))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serveOps(ctx, log, cfg, opsRuntime{level: level, reload: hup,
		load: func() (*config.Config, error) { return config.LoadOS("run", args) }})
}

// proxyOptions maps the configuration onto the proxy's options.
func proxyOptions(cfg *config.Config, log *slog.Logger) proxy.Options {
	return proxy.Options{
		Listen:         cfg.Listen,
		AdvertisedHost: cfg.AdvertisedHost,
		BrokerPorts:    cfg.BrokerPorts,
		Bootstrap:      cfg.Kafka.Bootstrap,
		MaxFrameBytes:  cfg.MaxFrameBytes,
		Logger:         log,
		TLS:            serverTLS(cfg.TLS),
		UpstreamTLS:    upstreamTLS(cfg.Kafka.TLS),
		UpstreamSASL:   upstreamSASL(cfg.Kafka.SASL),
		Limits:         proxyLimits(cfg.Limits),
	}
}

// proxyLimits maps the configured limits onto the proxy's.
func proxyLimits(l config.Limits) proxy.Limits {
	return proxy.Limits{
		MaxConnections:           l.MaxConnections,
		MaxInflightPerConnection: l.MaxInflightPerConnection,
		MaxQueuedBytes:           l.MaxQueuedBytes,
		MaxOutboundPerConnection: l.MaxOutboundBytesPerConnection,
	}
}

// openTee connects to OpenMLDB and builds the tee for the configured sinks; nil when there are
// none, so the proxy stays pure L4. m registers the tee's and the OpenMLDB client's metrics.
func openTee(ctx context.Context, log *slog.Logger, cfg *config.Config, m teeMetrics) (*tee.Tee, *openmldb.Client, error) {
	if len(cfg.Sinks) == 0 {
		return nil, nil, nil
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Said first, so that 30 s of waiting on an unreachable ZooKeeper is not silent.
	log.Info("connecting to OpenMLDB", "zk_cluster", cfg.OpenMLDB.ZKCluster, "zk_path", cfg.OpenMLDB.ZKPath,
		"nameserver", cfg.OpenMLDB.Nameserver, "database", cfg.OpenMLDB.Database, "timeout", 30*time.Second)
	oo := openmldbOptions(cfg.OpenMLDB, log)
	if m.rpc != nil {
		oo.OnRPC = m.rpc.Observe
	}
	store, err := openmldb.Open(octx, oo)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to OpenMLDB: %w", err)
	}
	// A missing database would otherwise show only as every record refused, as if the data
	// were wrong.
	if err := requireDatabase(octx, store, cfg.OpenMLDB.Database); err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("openmldb.database: %w", err)
	}
	var kafkaTLS *tls.Config
	if up := upstreamTLS(cfg.Kafka.TLS); up != nil {
		if kafkaTLS, err = up.ClientConfig(); err != nil {
			store.Close()
			return nil, nil, err
		}
	}
	t, err := tee.New(tee.Options{Sinks: cfg.Sinks, Database: cfg.OpenMLDB.Database, Store: store,
		KafkaBootstrap: cfg.Kafka.Bootstrap, KafkaTLS: kafkaTLS, KafkaSASL: upstreamSASL(cfg.Kafka.SASL), Logger: log, Metrics: m.tee, LogPayloads: cfg.Log.Payloads,
		TransactionMaxTimeout: cfg.Kafka.TransactionMaxTimeout, JournalDir: cfg.OpenMLDB.JournalDir,
		MaxHeldTransactionRows: cfg.Limits.MaxHeldTransactionRows})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return t, store, nil
}

// requireDatabase checks that OpenMLDB has db.
func requireDatabase(ctx context.Context, store *openmldb.Client, db string) error {
	dbs, err := store.Databases(ctx)
	if err != nil {
		return fmt.Errorf("connect to OpenMLDB: %w", err)
	}
	if !slices.Contains(dbs, db) {
		return fmt.Errorf("OpenMLDB has no database %q (it has %q); create it (CREATE DATABASE %s;) or correct the name", db, dbs, db)
	}
	return nil
}

func openmldbOptions(o config.OpenMLDB, log *slog.Logger) openmldb.Options {
	return openmldb.Options{ZKCluster: o.ZKCluster, ZKPath: o.ZKPath, ZKAuth: o.ZKAuth, Nameserver: o.Nameserver,
		User: o.User, Password: o.Password, Logger: log}
}

// serve runs a proxy (with the tee when sinks are configured) until ctx ends, logging one
// "ready" line once it accepts connections. extra is appended to that line. It does not reload.
func serve(ctx context.Context, log *slog.Logger, cfg *config.Config, extra ...any) error {
	return serveOps(ctx, log, cfg, opsRuntime{}, extra...)
}

// newLogger builds the process logger on stderr.
func newLogger(l config.Log) *slog.Logger {
	log, _ := newLoggerVar(l)
	return log
}

// newLoggerVar builds the process logger on stderr with a level that SIGHUP can change.
func newLoggerVar(l config.Log) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(l.SlogLevel())
	o := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), lv
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o)), lv
}
