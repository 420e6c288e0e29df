package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Bounds of the per-(API key, version) counter table. Keys and versions outside it (proprietary
// keys, far-future versions) share one "other" series, so the table never grows at run time.
const (
	metricKeys     = 128
	metricVersions = 32
)

// apiCounts are the counters of one API key and version, updated with atomics on the hot path.
type apiCounts struct {
	requests atomic.Uint64
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
}

// Metrics are the proxy's Prometheus series. Create them with NewMetrics on the registry the
// admin listener serves and pass them as Options.Metrics; one Metrics serves one Proxy.
//
// Request counting costs two atomic adds per request and one per response: a fixed table of
// atomic counters indexed by API key and version, turned into series only when scraped.
type Metrics struct {
	api   [metricKeys][metricVersions]apiCounts
	other apiCounts

	connsTotal   prometheus.Counter
	upConns      *prometheus.GaugeVec
	upConnsTotal *prometheus.CounterVec
	upErrors     *prometheus.CounterVec
	produce      [2]prometheus.Observer // plain, tee
	drained      prometheus.Counter

	proxy atomic.Pointer[Proxy] // the proxy the gauges read

	// Children of the per-broker vectors, resolved once per broker address (dials, not requests).
	mu        sync.Mutex
	upSeries  map[string]*upstreamSeries
	swept     time.Time        // last sweep of idle upstream series
	now       func() time.Time // time.Now; tests move it
	descs     apiDescs
	gaugeDesc [4]*prometheus.Desc
}

// upstreamSeries are the resolved per-broker children.
type upstreamSeries struct {
	conns     prometheus.Gauge
	total     prometheus.Counter
	dialErrs  prometheus.Counter
	closeErrs prometheus.Counter
	open      int       // connections open now
	used      time.Time // last connection event
}

// Per-broker series of addresses no connection has used for idleSeriesAfter are dropped, so a
// proxy running for months in front of brokers whose addresses change (pods rescheduled) does
// not export every address it ever saw. The sweep runs when a new address appears, at most once
// a minute; a dropped address that comes back starts its counters from zero, which rate() and
// increase() read as a counter reset.
const (
	idleSeriesAfter = time.Hour
	sweepEvery      = time.Minute
)

type apiDescs struct{ requests, bytesIn, bytesOut *prometheus.Desc }

// Produce latency paths (label "path" of okp_produce_seconds).
const (
	pathPlain = 0
	pathTee   = 1
)

// NewMetrics creates the proxy's metrics and registers them with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	api := []string{"api_key", "api", "version"}
	broker := []string{"broker"}
	m := &Metrics{
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "okp_client_connections_total",
			Help: "Client connections accepted (over all listeners)."}),
		upConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "okp_upstream_connections",
			Help: "Open connections to each upstream broker."}, broker),
		upConnsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_upstream_connections_total",
			Help: "Connections opened to each upstream broker."}, broker),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "okp_upstream_errors_total",
			Help: "Upstream failures per broker: kind=dial (could not connect) or kind=closed (the broker ended a connection a client still used)."},
			[]string{"broker", "kind"}),
		drained: prometheus.NewCounter(prometheus.CounterOpts{Name: "okp_drain_refused_connections_total",
			Help: "Client connections closed at once because the proxy was draining."}),
		upSeries: map[string]*upstreamSeries{},
		now:      time.Now,
		descs: apiDescs{
			requests: prometheus.NewDesc("okp_requests_total", "Requests received from clients, by API key and version.", api, nil),
			bytesIn:  prometheus.NewDesc("okp_request_bytes_total", "Request bytes received from clients (frames with their size prefix).", api, nil),
			bytesOut: prometheus.NewDesc("okp_response_bytes_total", "Response bytes sent to clients (frames with their size prefix).", api, nil),
		},
		gaugeDesc: [4]*prometheus.Desc{
			prometheus.NewDesc("okp_client_connections", "Client connections open now.", nil, nil),
			prometheus.NewDesc("okp_inflight_requests", "Requests read from clients and not answered yet (including Produce requests waiting for OpenMLDB).", nil, nil),
			prometheus.NewDesc("okp_queued_bytes", "Request bytes held by the proxy now (limits.max_queued_bytes counts these).", nil, nil),
			prometheus.NewDesc("okp_read_pauses_total", "Times a client connection stopped being read because a limit was reached.", nil, nil),
		},
	}
	produce := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "okp_produce_seconds",
		Help:    "Produce round trip in the proxy, from the request read to the response written; path=tee when the tee wrote rows to OpenMLDB, path=plain otherwise.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"path"})
	m.produce[pathPlain] = produce.WithLabelValues("plain")
	m.produce[pathTee] = produce.WithLabelValues("tee")
	if reg != nil {
		reg.MustRegister(m, m.connsTotal, m.upConns, m.upConnsTotal, m.upErrors, m.drained, produce)
	}
	return m
}

// Describe implements prometheus.Collector for the series Collect builds.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.descs.requests
	ch <- m.descs.bytesIn
	ch <- m.descs.bytesOut
	for _, d := range m.gaugeDesc {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the per-API counters that moved, and the gauges read
// from the proxy.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	emit := func(c *apiCounts, key, name, ver string) {
		n := c.requests.Load()
		if n == 0 {
			return
		}
		ch <- prometheus.MustNewConstMetric(m.descs.requests, prometheus.CounterValue, float64(n), key, name, ver)
		ch <- prometheus.MustNewConstMetric(m.descs.bytesIn, prometheus.CounterValue, float64(c.bytesIn.Load()), key, name, ver)
		ch <- prometheus.MustNewConstMetric(m.descs.bytesOut, prometheus.CounterValue, float64(c.bytesOut.Load()), key, name, ver)
	}
	for k := range m.api {
		name := kmsg.NameForKey(int16(k))
		if name == "" {
			name = "unknown"
		}
		for v := range m.api[k] {
			emit(&m.api[k][v], strconv.Itoa(k), name, strconv.Itoa(v))
		}
	}
	emit(&m.other, "other", "other", "other")
	p := m.proxy.Load()
	if p == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.gaugeDesc[0], prometheus.GaugeValue, float64(p.ClientConns()))
	ch <- prometheus.MustNewConstMetric(m.gaugeDesc[1], prometheus.GaugeValue, float64(p.inflight.Load()))
	ch <- prometheus.MustNewConstMetric(m.gaugeDesc[2], prometheus.GaugeValue, float64(p.QueuedBytes()))
	ch <- prometheus.MustNewConstMetric(m.gaugeDesc[3], prometheus.CounterValue, float64(p.ReadPauses()))
}

// counts returns the counters of key and version.
func (m *Metrics) counts(key, ver int16) *apiCounts {
	if key >= 0 && key < metricKeys && ver >= 0 && ver < metricVersions {
		return &m.api[key][ver]
	}
	return &m.other
}

// request counts one request frame of n bytes.
func (m *Metrics) request(key, ver int16, n int) {
	c := m.counts(key, ver)
	c.requests.Add(1)
	c.bytesIn.Add(uint64(n))
}

// response counts n response bytes of key and version.
func (m *Metrics) response(key, ver int16, n int) {
	if n > 0 {
		m.counts(key, ver).bytesOut.Add(uint64(n))
	}
}

// upstreamEvent runs record on the series of a broker address, under the lock.
func (m *Metrics) upstreamEvent(addr string, record func(*upstreamSeries)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s := m.upSeries[addr]
	if s == nil {
		m.sweepIdleLocked(now)
		s = &upstreamSeries{
			conns:     m.upConns.WithLabelValues(addr),
			total:     m.upConnsTotal.WithLabelValues(addr),
			dialErrs:  m.upErrors.WithLabelValues(addr, "dial"),
			closeErrs: m.upErrors.WithLabelValues(addr, "closed"),
		}
		m.upSeries[addr] = s
	}
	s.used = now
	record(s)
}

// dialFailed counts a failed dial of a broker address.
func (m *Metrics) dialFailed(addr string) {
	m.upstreamEvent(addr, func(u *upstreamSeries) { u.dialErrs.Inc() })
}

// sweepIdleLocked drops the series of addresses without open connections and unused for
// idleSeriesAfter; mu is held.
func (m *Metrics) sweepIdleLocked(now time.Time) {
	if now.Sub(m.swept) < sweepEvery {
		return
	}
	m.swept = now
	for addr, s := range m.upSeries {
		if s.open > 0 || now.Sub(s.used) < idleSeriesAfter {
			continue
		}
		m.upConns.DeleteLabelValues(addr)
		m.upConnsTotal.DeleteLabelValues(addr)
		m.upErrors.DeleteLabelValues(addr, "dial")
		m.upErrors.DeleteLabelValues(addr, "closed")
		delete(m.upSeries, addr)
	}
}

// observeProduce records a Produce round trip that started at start (unix ns).
func (m *Metrics) observeProduce(start int64, teed bool) {
	path := pathPlain
	if teed {
		path = pathTee
	}
	m.produce[path].Observe(float64(time.Now().UnixNano()-start) / 1e9)
}
