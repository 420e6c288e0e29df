// Package admin serves the proxy's operational HTTP endpoints on their own listener: /metrics
// (Prometheus text format from a private registry), /livez, /readyz and, when enabled,
// /debug/pprof/.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultCheckTimeout bounds all readiness checks of one /readyz request.
const DefaultCheckTimeout = 3 * time.Second

// Check is one readiness condition; Func returns nil when it holds.
type Check struct {
	// Name prefixes the reason in /readyz's answer ("kafka", "openmldb").
	Name string
	Func func(ctx context.Context) error
}

// Options configures a Server.
type Options struct {
	// Listen is the HTTP address (host:port; port 0 picks one, see Addr).
	Listen string
	// Gatherer is what /metrics serves, normally the process's private prometheus.Registry.
	Gatherer prometheus.Gatherer
	// Checks must all pass for /readyz to answer 200.
	Checks []Check
	// Live must all pass for /livez to answer 200: conditions only a restart cures (the proxy's
	// engine stopped), cheap to evaluate. None: /livez is 200 while the process runs.
	Live []Check
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// CheckTimeout bounds one /readyz evaluation; default DefaultCheckTimeout.
	CheckTimeout time.Duration
	// Logger receives the server's own errors; default slog.Default().
	Logger *slog.Logger
}

// Server is a running admin listener.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	// stop cancels every request's context at Close: a CPU profile or trace being taken
	// (/debug/pprof/profile?seconds=30) then ends with what it has instead of holding the
	// process's shutdown for its whole duration.
	stop context.CancelFunc
}

// Start binds opts.Listen and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %s: %w", opts.Listen, err)
	}
	base, stop := context.WithCancel(context.Background())
	s := &Server{opts: opts, ln: ln, done: make(chan struct{}), stop: stop}
	s.srv = &http.Server{Handler: s.mux(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:    slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base }}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error("admin listener stopped", "addr", ln.Addr(), "err", err)
		}
	}()
	return s, nil
}

func (s *Server) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn)}))
	m.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		s.answer(w, r, s.opts.Live, "ok", "not live")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s.answer(w, r, s.opts.Checks, "ready", "not ready")
	})
	if s.opts.Pprof {
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return m
}

// answer runs every check concurrently and answers 200 with ok, or 503 with one line, starting
// with failed, naming each failed check and why.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, checks []Check, ok, failed string) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.CheckTimeout)
	defer cancel()
	errs := make([]error, len(checks))
	done := make(chan int, len(checks))
	for i, c := range checks {
		go func() {
			errs[i] = c.Func(ctx)
			done <- i
		}()
	}
	for range checks {
		<-done
	}
	var reasons []string
	for i, err := range errs {
		if err != nil {
			reasons = append(reasons, checks[i].Name+": "+oneLine(err.Error()))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(reasons) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(failed + ": " + strings.Join(reasons, "; ") + "\n"))
		return
	}
	_, _ = w.Write([]byte(ok + "\n"))
}

// oneLine keeps a reason on a single line (joined errors carry newlines).
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: requests in progress are told to end (their contexts are cancelled)
// and waited for until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.stop()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
		err = fmt.Errorf("admin shutdown: %w", err)
	}
	<-s.done
	return err
}
