package tee

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// maxLoggedPayload bounds each record value written to a log line under log.payloads.
const maxLoggedPayload = 4 << 10

// Reload replaces the sinks (topic → table mapping and policies) for requests that start after
// it returns; requests already in progress finish with the sinks they started with. It
// normalizes a copy of sinks (config.NormalizeSinks) and validates first: on error nothing
// changes. Open client connections are not touched.
func (t *Tee) Reload(sinks []config.Sink) error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	next, err := normalizedSinks(sinks)
	if err != nil {
		return err
	}
	for i := range next {
		if err := t.checkExactlyOnce(&next[i]); err != nil {
			return err
		}
	}
	if err := t.ensureDLQ(next); err != nil {
		return err
	}
	t.sinks.Store(&next)
	// Converters were built for the old sinks; requests planned under them rebuild theirs.
	t.mu.Lock()
	clear(t.tables)
	t.mu.Unlock()
	return nil
}

// Sinks returns the sinks in effect.
func (t *Tee) Sinks() []config.Sink { return *t.sinks.Load() }

// SetLogPayloads turns record values in rejection log lines on or off (log.payloads).
func (t *Tee) SetLogPayloads(on bool) { t.payloads.Store(on) }

// SetMaxHeldTransactionRows replaces the bound on rows of open transactions (0: no limit) for
// batches planned from now on.
func (t *Tee) SetMaxHeldTransactionRows(n int) { t.maxHeld.Store(int64(n)) }

// SetKafkaTLS replaces the TLS configuration of the tee's own Kafka clients (a reload re-read
// kafka.tls's files); their next connections use it. Ignored when the tee started without TLS.
func (t *Tee) SetKafkaTLS(cfg *tls.Config) {
	if cfg != nil && t.kafkaTLS.Load() != nil {
		t.kafkaTLS.Store(cfg)
	}
}

// kafkaOpts are the options of the tee's own Kafka clients: the brokers, kafka.tls and kafka.sasl.
func (t *Tee) kafkaOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(t.bootstrap...)}
	if t.kafkaTLS.Load() != nil {
		// Each connection takes the configuration current when it is dialed, so a CA fixed by a
		// reload reaches clients made before it.
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			cfg := t.kafkaTLS.Load().Clone()
			if cfg.ServerName == "" {
				if h, _, err := net.SplitHostPort(host); err == nil {
					cfg.ServerName = h
				}
			}
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
			return d.DialContext(ctx, network, host)
		}))
	}
	if t.kafkaSASL != nil {
		opts = append(opts, kgo.SASL(t.kafkaSASL))
	}
	return opts
}

// ensureDLQ starts the dead-letter producer when a sink needs one and none runs yet.
func (t *Tee) ensureDLQ(sinks []config.Sink) error {
	if t.dlq.Load() != nil {
		return nil
	}
	for _, s := range sinks {
		if s.OnInvalid != config.OnInvalidDLQ {
			continue
		}
		// Records that cannot be delivered fail after DefaultWriteTimeout instead of waiting for
		// ever: the producer was answered at its deadline, and its retry dead-letters them again.
		// A dlq_topic that does not exist yet is created by the broker where it allows that
		// (auto.create.topics.enable), as Kafka Connect creates its dead-letter topic.
		cl, err := kgo.NewClient(append(t.kafkaOpts(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
			kgo.RecordDeliveryTimeout(DefaultWriteTimeout), kgo.AllowAutoTopicCreation())...)
		if err != nil {
			return fmt.Errorf("dead-letter producer: %w", err)
		}
		t.dlq.Store(cl)
		return nil
	}
	return nil
}

// rejectLogBurst is how many rejected partitions a second are logged per table.
const rejectLogBurst = 10

// logDeadLetterFailure logs a dead-letter produce that did not get every invalid record to the
// DLQ topic: the client sees a retriable error whose message (Produce v8+) few clients print.
func (t *Tee) logDeadLetterFailure(p *partitionPlan, produced int, err error) {
	ok, suppressed := t.logLimit.Allow("dlq " + p.tableName())
	if !ok {
		return
	}
	t.log.Error("dead-letter produce failed; the partition is answered with a retriable error", "topic", p.topic,
		"partition", p.partition, "table", p.tableName(), "dlq_topic", p.sink.DLQTopic, "invalid_records", len(p.invalid),
		"produced", produced, "err", err, "suppressed", suppressed)
}

// logRejected writes the one log line of a rejected partition; record values only under
// log.payloads.
func (t *Tee) logRejected(c proxy.ConnInfo, p *partitionPlan) {
	ok, suppressed := t.rejectLog.Allow("rejected " + p.tableName())
	if !ok {
		return
	}
	attrs := []any{"client", c.RemoteAddr, "client_id", c.ClientID, "topic", p.topic, "partition", p.partition,
		"table", p.tableName(), "code", p.rejectCode, "invalid_records", len(p.invalid), "reason", p.rejectMessage}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	if t.payloads.Load() && len(p.invalid) > 0 {
		values := make([]string, len(p.invalid))
		for i, bad := range p.invalid {
			v := bad.value
			if len(v) > maxLoggedPayload {
				v = v[:maxLoggedPayload]
			}
			values[i] = string(v)
		}
		attrs = append(attrs, "payloads", values)
	}
	t.log.Warn("rejected produce partition", attrs...)
}

// Ready reports whether rows can be written: the OpenMLDB catalog lists at least one tablet and
// every tablet accepts a TCP connection within ctx.
func (t *Tee) Ready(ctx context.Context) error {
	tablets := t.store.Tablets()
	if len(tablets) == 0 {
		return errors.New("OpenMLDB catalog lists no tablets")
	}
	names := make([]string, 0, len(tablets))
	for name := range tablets {
		names = append(names, name)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", tablets[name])
			if err != nil {
				errs[i] = fmt.Errorf("OpenMLDB tablet %s unreachable: %w", name, err)
				return
			}
			_ = c.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RPCMetrics are the OpenMLDB RPC series per tablet endpoint; Observe is the openmldb.Options
// OnRPC hook.
type RPCMetrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec

	mu     sync.RWMutex
	series map[string]*rpcSeries // by endpoint: resolved once, then read-locked lookups only
	swept  time.Time             // last sweep of idle endpoints (mu)
	now    func() time.Time      // time.Now; tests move it
}

type rpcSeries struct {
	latency prometheus.Observer
	errors  prometheus.Counter
	calls   atomic.Uint64 // RPCs observed; compared between sweeps (no clock read per RPC)
	// mark and markedAt: calls at the sweep that last saw it change, and that sweep's time (mu).
	mark     uint64
	markedAt time.Time
}

// Series of endpoints without an RPC for idleEndpointAfter are dropped, so tablets that moved
// away (pods rescheduled with new addresses) do not stay exported for as long as the proxy runs.
// The sweep runs when a new endpoint appears, at most once a minute; an endpoint that comes back
// starts from zero, which rate() and increase() read as a counter reset.
const (
	idleEndpointAfter = time.Hour
	endpointSweepGap  = time.Minute
)

// NewRPCMetrics creates the OpenMLDB RPC metrics and registers them with reg (nil: unregistered).
func NewRPCMetrics(reg prometheus.Registerer) *RPCMetrics {
	m := &RPCMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "okp_openmldb_rpc_seconds",
			Help:    "OpenMLDB RPC latency (Puts, DDL, reads) per tablet or nameserver endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"endpoint"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_openmldb_rpc_errors_total",
			Help: "OpenMLDB RPCs that failed (connection, timeout or brpc error) per endpoint; a failed dial counts too."}, []string{"endpoint"}),
		series: map[string]*rpcSeries{},
		now:    time.Now,
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.errors)
	}
	return m
}

// sweepIdleLocked drops the series of endpoints with no RPC since a sweep idleEndpointAfter ago
// or longer; mu is held.
func (m *RPCMetrics) sweepIdleLocked(now time.Time) {
	if now.Sub(m.swept) < endpointSweepGap {
		return
	}
	m.swept = now
	for ep, s := range m.series {
		if n := s.calls.Load(); n != s.mark {
			s.mark, s.markedAt = n, now
			continue
		}
		if now.Sub(s.markedAt) >= idleEndpointAfter {
			m.latency.DeleteLabelValues(ep)
			m.errors.DeleteLabelValues(ep)
			delete(m.series, ep)
		}
	}
}

// RegisterPutCounters registers okp_openmldb_puts_total{connection="loop"|"shared"}, the Puts
// sent on the event loops' own tablet connections (openmldb.Lane) and on the client's shared
// ones, and okp_openmldb_tie_waits_total (openmldb.Client.TieWaits).
func RegisterPutCounters(reg prometheus.Registerer, store *openmldb.Client) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "okp_openmldb_tie_waits_total",
		Help: "OpenMLDB Puts held until an earlier Put of a row with the same key and event time (an index with a TS column) was answered, so the later record reads as the newer."},
		func() float64 { return float64(store.TieWaits()) }))
	for _, route := range []string{"loop", "shared"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "okp_openmldb_puts_total",
			Help:        "OpenMLDB Puts sent, by connection: the event loop's own (responses read by the loop) or the client's shared one.",
			ConstLabels: prometheus.Labels{"connection": route}}, func() float64 {
			onLanes, shared := store.PutCounts()
			if route == "loop" {
				return float64(onLanes)
			}
			return float64(shared)
		}))
	}
}

// Observe records one RPC (d is 0 for a failed dial).
func (m *RPCMetrics) Observe(endpoint string, d time.Duration, err error) {
	// calls is counted under mu (read-locked): a sweep, write-locked, then sees it moved and keeps
	// the series this goroutine is about to update.
	m.mu.RLock()
	s, ok := m.series[endpoint]
	if ok {
		s.calls.Add(1)
	}
	m.mu.RUnlock()
	if !ok {
		m.mu.Lock()
		if s, ok = m.series[endpoint]; !ok {
			now := m.now()
			m.sweepIdleLocked(now)
			s = &rpcSeries{latency: m.latency.WithLabelValues(endpoint), errors: m.errors.WithLabelValues(endpoint), markedAt: now}
			m.series[endpoint] = s
		}
		s.calls.Add(1)
		m.mu.Unlock()
	}
	if err != nil {
		s.errors.Inc()
		return
	}
	s.latency.Observe(d.Seconds())
}
