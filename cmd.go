package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
	"run":  runCmd,
	"demo": demoCmd,
	"scan": scanCmd,
}

// dispatch runs the subcommand named by args[0]; run is the default when args is empty or starts
// with a flag.
func dispatch(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runCmd(args)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (want run, demo or scan)", args[0])
	}
	return cmd(args[1:])
}

// runCmd starts the proxy from the configuration and serves until SIGINT or SIGTERM.
func runCmd(args []string) error {
	cfg, err := config.LoadOS("run", args)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	if len(cfg.ConnectorIgnored) > 0 {
		log.Warn("connector config keys with no effect here", "file", cfg.ConnectorConfig, "keys", strings.Join(cfg.ConnectorIgnored, ","))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, log, cfg)
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
	}
}

// openTee connects to OpenMLDB and builds the tee for the configured sinks; nil when there are
// none, so the proxy stays pure L4.
func openTee(ctx context.Context, log *slog.Logger, cfg *config.Config) (*tee.Tee, *openmldb.Client, error) {
	if len(cfg.Sinks) == 0 {
		return nil, nil, nil
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := openmldb.Open(octx, openmldbOptions(cfg.OpenMLDB, log))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to OpenMLDB: %w", err)
	}
	t, err := tee.New(tee.Options{Sinks: cfg.Sinks, Database: cfg.OpenMLDB.Database, Store: store,
		KafkaBootstrap: cfg.Kafka.Bootstrap, Logger: log})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return t, store, nil
}

func openmldbOptions(o config.OpenMLDB, log *slog.Logger) openmldb.Options {
	return openmldb.Options{ZKCluster: o.ZKCluster, ZKPath: o.ZKPath, ZKAuth: o.ZKAuth, Nameserver: o.Nameserver,
		User: o.User, Password: o.Password, Logger: log}
}

// serve runs a proxy (with the tee when sinks are configured) until ctx ends, logging one
// "ready" line once it accepts connections. extra is appended to that line.
func serve(ctx context.Context, log *slog.Logger, cfg *config.Config, extra ...any) error {
	opts := proxyOptions(cfg, log)
	t, store, err := openTee(ctx, log, cfg)
	if err != nil {
		return err
	}
	if t != nil {
		defer store.Close()
		defer t.Close()
		opts.Hook = t
	}
	p, err := proxy.New(opts)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = p.Start(startCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("start proxy: %w", err)
	}
	attrs := []any{"listen", p.Addr(), "advertised_host", opts.AdvertisedHost, "kafka", strings.Join(opts.Bootstrap, ","), "sinks", len(cfg.Sinks)}
	log.Info("ready", append(attrs, extra...)...)
	<-ctx.Done()
	log.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Close(stopCtx)
}

// newLogger builds the process logger on stderr.
func newLogger(l config.Log) *slog.Logger {
	o := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}
