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
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// commands maps a subcommand name to its entry point, which gets the arguments after the name.
var commands = map[string]func(args []string) error{
	"run":  runCmd,
	"demo": demoCmd,
}

// dispatch runs the subcommand named by args[0]; run is the default when args is empty or starts
// with a flag.
func dispatch(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runCmd(args)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (want run or demo)", args[0])
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, log, proxyOptions(cfg, log))
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

// serve runs a proxy until ctx ends, logging one "ready" line once it accepts connections.
func serve(ctx context.Context, log *slog.Logger, opts proxy.Options) error {
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
	log.Info("ready", "listen", p.Addr(), "advertised_host", opts.AdvertisedHost, "kafka", strings.Join(opts.Bootstrap, ","))
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
