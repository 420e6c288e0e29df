// Command proxyprof is the proxy's `run` command built with CPU profiling, for finding where the
// proxy spends its time under the load benchmark without touching the product's command line:
//
//	go build -o /tmp/proxyprof ./e2e/cmd/proxyprof
//	OKP_CPUPROFILE=/tmp/tee.pprof go run ./e2e/cmd/loadbench -tee -proxy-bin /tmp/proxyprof
//	go tool pprof -top /tmp/proxyprof /tmp/tee.pprof
//
// It accepts the arguments of `openmldb-kafka-proxy run` and writes the profile of the whole
// process lifetime to $OKP_CPUPROFILE when it stops on SIGTERM or SIGINT. With one profile per
// process, the loadbench's two proxies write to $OKP_CPUPROFILE.<pid>.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "proxyprof:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	cfg, err := config.LoadOS("run", args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	if path := os.Getenv("OKP_CPUPROFILE"); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := proxy.Options{Listen: cfg.Listen, AdvertisedHost: cfg.AdvertisedHost, BrokerPorts: cfg.BrokerPorts,
		Bootstrap: cfg.Kafka.Bootstrap, MaxFrameBytes: cfg.MaxFrameBytes, Logger: log}
	if len(cfg.Sinks) > 0 {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		o := cfg.OpenMLDB
		store, err := openmldb.Open(octx, openmldb.Options{ZKCluster: o.ZKCluster, ZKPath: o.ZKPath, ZKAuth: o.ZKAuth,
			Nameserver: o.Nameserver, User: o.User, Password: o.Password, Logger: log})
		cancel()
		if err != nil {
			return fmt.Errorf("connect to OpenMLDB: %w", err)
		}
		defer store.Close()
		t, err := tee.New(tee.Options{Sinks: cfg.Sinks, Database: o.Database, Store: store, KafkaBootstrap: cfg.Kafka.Bootstrap, Logger: log})
		if err != nil {
			return err
		}
		defer t.Close()
		opts.Hook = t
	}
	p, err := proxy.New(opts)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = p.Start(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("start proxy: %w", err)
	}
	log.Info("ready", "listen", p.Addr(), "kafka", strings.Join(opts.Bootstrap, ","), "sinks", len(cfg.Sinks))
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Close(cctx)
}
