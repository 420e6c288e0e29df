package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/admin"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// opsRuntime is what serveOps needs besides the configuration. Zero means: fixed log level, no
// reload.
type opsRuntime struct {
	// level is the logger's level, changed by a reload.
	level *slog.LevelVar
	// reload receives SIGHUP; each receipt re-reads the configuration with load.
	reload <-chan os.Signal
	load   func() (*config.Config, error)
	// started and reloaded let tests follow along: the admin address ("" when disabled) and
	// the proxy once serving, and each reload's outcome.
	started  func(adminAddr string, p *proxy.Proxy)
	reloaded func(error)
}

// teeMetrics are the collectors openTee wires into the tee and the OpenMLDB client.
type teeMetrics struct {
	tee *tee.Metrics
	rpc *tee.RPCMetrics
}

// shutdownCloseTimeout bounds closing the connections after the drain.
const shutdownCloseTimeout = 10 * time.Second

// serveOps runs the proxy with its admin listener until ctx ends, reloading on rt.reload, and
// drains before closing. If the proxy fails by itself (proxy.Proxy.Failed) it shuts down the same
// way and returns the failure, so the command exits non-zero.
func serveOps(ctx context.Context, log *slog.Logger, cfg *config.Config, rt opsRuntime, extra ...any) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := proxyOptions(cfg, log)
	opts.Metrics = proxy.NewMetrics(reg)
	t, store, err := openTee(ctx, log, cfg, teeMetrics{tee: tee.NewMetrics(reg), rpc: tee.NewRPCMetrics(reg)})
	if err != nil {
		return err
	}
	if t != nil {
		defer store.Close()
		defer t.Close()
		opts.Hook = t
		tee.RegisterPutCounters(reg, store)
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
	adminAddr := ""
	if cfg.Admin.Listen != "" {
		checks := []admin.Check{{Name: "kafka", Func: p.Ready}}
		if t != nil {
			checks = append(checks, admin.Check{Name: "openmldb", Func: t.Ready})
		}
		live := []admin.Check{{Name: "kafka", Func: func(context.Context) error { return p.Err() }}}
		adm, err := admin.Start(admin.Options{Listen: cfg.Admin.Listen, Gatherer: reg, Checks: checks, Live: live, Pprof: cfg.Admin.Pprof, Logger: log})
		if err != nil {
			closeProxy(log, p)
			return err
		}
		defer func() {
			actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := adm.Close(actx); err != nil {
				log.Warn("close admin listener", "err", err)
			}
		}()
		adminAddr = adm.Addr()
	}
	attrs := []any{"listen", p.Addr(), "advertised_host", opts.AdvertisedHost, "kafka", strings.Join(opts.Bootstrap, ","), "sinks", len(cfg.Sinks), "admin", adminAddr}
	log.Info("ready", append(attrs, extra...)...)
	if rt.started != nil {
		rt.started(adminAddr, p)
	}
	cur := cfg
	for {
		select {
		case <-ctx.Done():
			return shutdown(log, p, t, cur.Shutdown.DrainTimeout)
		case <-p.Failed():
			// The proxy serves nobody any more; exit non-zero so a supervisor restarts it, after
			// letting the tee store what it still holds (shutdown's drain ends at once otherwise).
			err := shutdown(log, p, t, cur.Shutdown.DrainTimeout)
			return errors.Join(fmt.Errorf("proxy stopped serving: %w", p.Err()), err)
		case <-rt.reload:
			next, err := reload(log, rt, p, t, cfg)
			if err != nil {
				log.Error("configuration reload rejected; the running configuration stays", "err", err)
			} else {
				cur = next
			}
			if rt.reloaded != nil {
				rt.reloaded(err)
			}
		}
	}
}

// shutdown drains the proxy for at most timeout (0: no drain), then closes every connection. Once
// every request read is answered, the tee (nil without sinks) stores the committed rows it still
// retries while the clients take their last answers: a client slow to read must not use up the
// tee's time.
func shutdown(log *slog.Logger, p *proxy.Proxy, t *tee.Tee, timeout time.Duration) error {
	if timeout > 0 {
		log.Info("shutting down: draining", "drain_timeout", timeout, "inflight", p.InflightRequests(), "clients", p.ClientConns())
		dctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		err := p.DrainRequests(dctx)
		teeErr := make(chan error, 1)
		if t != nil {
			go func() { teeErr <- t.Drain(dctx) }()
		} else {
			teeErr <- nil
		}
		err = errors.Join(err, p.AnswersTaken(dctx), <-teeErr)
		cancel()
		if err != nil {
			log.Warn("drain incomplete; closing the remaining connections", "err", err)
		} else {
			log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
		}
	} else {
		log.Info("shutting down")
	}
	return closeProxy(log, p)
}

func closeProxy(log *slog.Logger, p *proxy.Proxy) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownCloseTimeout)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		log.Warn("close proxy", "err", err)
		return err
	}
	return nil
}

// reload re-reads the configuration and applies what can change while running: the sinks
// (topic → table mapping and policies), the log level, log.payloads, shutdown.drain_timeout, the
// limits and the TLS certificate files (re-read from the paths the proxy started with). Nothing is applied
// when the new configuration is invalid. Keys that only take effect at start are named in a
// warning when they differ from the running ones (started).
func reload(log *slog.Logger, rt opsRuntime, p *proxy.Proxy, t *tee.Tee, started *config.Config) (*config.Config, error) {
	if rt.load == nil {
		return nil, errors.New("no configuration source to reload from")
	}
	next, err := rt.load()
	if err != nil {
		return nil, err
	}
	if t == nil && len(next.Sinks) > 0 {
		return nil, errors.New("sinks: the proxy started without sinks (no OpenMLDB connection); adding sinks needs a restart")
	}
	// Everything that can fail is checked before anything is applied: a rejected reload changes
	// nothing.
	commitTLS, err := p.PrepareTLS()
	if err != nil {
		return nil, err
	}
	if t != nil {
		if err := t.Reload(next.Sinks); err != nil {
			return nil, fmt.Errorf("sinks: %w", err)
		}
	}
	commitTLS()
	if t != nil {
		t.SetKafkaTLS(p.UpstreamTLSConfig())
		t.SetLogPayloads(next.Log.Payloads)
		t.SetMaxHeldTransactionRows(next.Limits.MaxHeldTransactionRows)
	}
	if rt.level != nil {
		rt.level.Set(next.Log.SlogLevel())
	}
	p.SetLimits(proxyLimits(next.Limits))
	if keys := restartKeys(started, next); len(keys) > 0 {
		log.Warn("changed keys take effect only after a restart", "keys", strings.Join(keys, ","))
	}
	log.Info("configuration reloaded", "sinks", len(next.Sinks), "log.level", next.Log.Level, "log.payloads", next.Log.Payloads,
		"limits.max_connections", next.Limits.MaxConnections, "limits.max_inflight_per_connection", next.Limits.MaxInflightPerConnection,
		"limits.max_queued_bytes", next.Limits.MaxQueuedBytes, "limits.max_outbound_bytes_per_connection", next.Limits.MaxOutboundBytesPerConnection,
		"limits.max_held_transaction_rows", next.Limits.MaxHeldTransactionRows)
	return next, nil
}

// restartKeys lists the keys whose values differ between a and b and that are read only at start.
func restartKeys(a, b *config.Config) []string {
	var keys []string
	add := func(key string, same bool) {
		if !same {
			keys = append(keys, key)
		}
	}
	add("listen", a.Listen == b.Listen)
	add("advertised_host", a.AdvertisedHost == b.AdvertisedHost)
	add("broker_ports", reflect.DeepEqual(a.BrokerPorts, b.BrokerPorts))
	add("kafka", reflect.DeepEqual(a.Kafka, b.Kafka))
	add("max_frame_bytes", a.MaxFrameBytes == b.MaxFrameBytes)
	add("tls", a.TLS == b.TLS)
	add("log.format", a.Log.Format == b.Log.Format)
	add("openmldb", a.OpenMLDB == b.OpenMLDB)
	add("admin", a.Admin == b.Admin)
	return keys
}
