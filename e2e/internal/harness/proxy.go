package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
)

// BinaryName is the file name of the proxy command.
const BinaryName = "openmldb-kafka-proxy"

// ModuleRoot returns the directory of the go.mod enclosing dir.
func ModuleRoot(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD in %s: %w", dir, err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD in %s: not inside a module", dir)
	}
	return filepath.Dir(mod), nil
}

// BuildProxy compiles the proxy command of the module at moduleDir into outDir and returns the
// binary's path. A cold build on the 2-core machine takes about a minute, hence the long bound.
func BuildProxy(ctx context.Context, moduleDir, outDir string) (string, error) {
	bin := filepath.Join(outDir, BinaryName)
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = moduleDir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", BinaryName, moduleDir, err, out)
	}
	return bin, nil
}

// ProxyOptions configures one proxy process.
type ProxyOptions struct {
	// Bin is the path of the built proxy binary.
	Bin string
	// Upstream lists the broker addresses given as --kafka.bootstrap.
	Upstream []string
	// Brokers is how many per-broker listener ports to reserve after the bootstrap port
	// (node ids 0..Brokers-1 land on P+1..P+Brokers); 0 means 3.
	Brokers int
	// LogLevel is passed as --log.level when set.
	LogLevel string
	// ExtraArgs are appended to the command line, e.g. tee settings.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for the "ready" line; 0 means 15s.
	ReadyTimeout time.Duration
}

func (o ProxyOptions) withDefaults() ProxyOptions {
	if o.Brokers == 0 {
		o.Brokers = 3
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 15 * time.Second
	}
	return o
}

// Proxy is a running proxy process.
type Proxy struct {
	// Addr is the bootstrap address clients dial.
	Addr string
	// BasePort is the bootstrap port; node n listens on BasePort+1+n.
	BasePort int
	// AdminAddr is the admin HTTP listener (/metrics, /livez, /readyz).
	AdminAddr string

	cmd     *exec.Cmd
	out     *readyWriter
	done    chan struct{}
	waitErr error
	killed  atomic.Bool // Kill ended it on purpose
}

// StartProxy starts the proxy on a free port block and waits until it prints a line containing
// "ready". Port races with other processes are retried a few times.
func StartProxy(ctx context.Context, o ProxyOptions) (*Proxy, error) {
	o = o.withDefaults()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		// One port more than the listeners need: the admin listener's. Left to port 0 it could
		// take one of the block's ports, freed a moment ago, before the broker listener that
		// metadata advertises there (a client then met the admin HTTP server).
		base, err := freeport.Block(o.Brokers + 2)
		if err != nil {
			return nil, err
		}
		p, err := StartProxyAt(ctx, o, base)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

// StartProxyAt starts the proxy with its bootstrap listener on port base, as StartProxy does on a
// free block; a restart on the same addresses uses the stopped proxy's BasePort and Brokers.
func StartProxyAt(ctx context.Context, o ProxyOptions, base int) (*Proxy, error) {
	o = o.withDefaults()
	addr := fmt.Sprintf("127.0.0.1:%d", base)
	// admin.listen after the broker ports: parallel proxies must not all bind the default
	// 127.0.0.1:9644; the drain stays inside Stop's grace period even when a client still
	// long-polls a Fetch.
	admin := fmt.Sprintf("127.0.0.1:%d", base+o.Brokers+1)
	args := []string{"run", "--listen", addr, "--kafka.bootstrap", strings.Join(o.Upstream, ","),
		"--admin.listen", admin, "--shutdown.drain_timeout", "3s"}
	if o.LogLevel != "" {
		args = append(args, "--log.level", o.LogLevel)
	}
	args = append(args, o.ExtraArgs...)
	// Not CommandContext: the process must outlive the start context and is stopped by Stop.
	cmd := exec.Command(o.Bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := newReadyWriter("ready")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	p := &Proxy{Addr: addr, BasePort: base, AdminAddr: admin, cmd: cmd, out: w, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(o.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-w.ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("proxy %s exited before ready (%v): %s", strings.Join(args, " "), p.waitErr, tail(w.String(), 3000))
	case <-timer.C:
		err := p.Stop(5 * time.Second)
		return nil, fmt.Errorf("proxy %s not ready after %s (stop: %v): %s", strings.Join(args, " "), o.ReadyTimeout, err, tail(w.String(), 3000))
	case <-ctx.Done():
		err := p.Stop(5 * time.Second)
		return nil, fmt.Errorf("proxy start: %w (stop: %v)", ctx.Err(), err)
	}
}

// BrokerAddr is the proxy address that must be advertised for upstream node id node.
func (p *Proxy) BrokerAddr(node int32) string {
	return fmt.Sprintf("127.0.0.1:%d", p.BasePort+1+int(node))
}

// Pid is the proxy's process id.
func (p *Proxy) Pid() int { return p.cmd.Process.Pid }

// Logs returns everything the proxy printed so far.
func (p *Proxy) Logs() string { return p.out.String() }

// Exited is closed when the process has exited.
func (p *Proxy) Exited() <-chan struct{} { return p.done }

// Kill ends the proxy's process group at once with SIGKILL, as a crash would (no drain, nothing
// flushed), and waits for the exit; a later Stop then reports no error for it.
func (p *Proxy) Kill() error {
	p.killed.Store(true)
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill proxy pid %d: %w", p.Pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("proxy pid %d did not exit after SIGKILL", p.Pid())
	}
}

// Stop sends SIGTERM, waits up to grace for the exit, then kills the process. It returns an error
// if the process had to be killed or exited with a failure other than the signal.
func (p *Proxy) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sigterm proxy pid %d: %w", p.Pid(), err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-timer.C:
	}
	killErr := p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("proxy pid %d did not exit after SIGKILL", p.Pid())
	}
	return fmt.Errorf("proxy pid %d ignored SIGTERM for %s and was killed (kill: %v)", p.Pid(), grace, killErr)
}

func (p *Proxy) exitErr() error {
	if p.waitErr == nil || p.killed.Load() {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return fmt.Errorf("proxy pid %d exit: %w", p.Pid(), p.waitErr)
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc on every architecture Go targets.
const clockTicks = 100

// CPUTime returns the user+system CPU time the proxy process has used so far (all threads),
// read from /proc/<pid>/stat. The resolution is 10 ms.
func (p *Proxy) CPUTime() (time.Duration, error) {
	return ProcessCPUTime(p.Pid())
}

// ProcessCPUTime reads utime+stime of pid from /proc/<pid>/stat.
func ProcessCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name is in parentheses and may contain spaces; fields resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat of pid %d: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')' f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(f))
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse utime of pid %d: %w", pid, err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stime of pid %d: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// readyWriter collects a process's output and closes ready on the first line containing word as a
// whole word ("already in use" must not count as ready).
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	word  *regexp.Regexp
	seen  bool
	ready chan struct{}
}

func newReadyWriter(word string) *readyWriter {
	return &readyWriter{word: regexp.MustCompile(`\b` + regexp.QuoteMeta(word) + `\b`), ready: make(chan struct{})}
}

func (w *readyWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Search from the start of the current line so a word split across writes is found.
	start := bytes.LastIndexByte(w.buf.Bytes(), '\n') + 1
	w.buf.Write(b)
	// Bound memory on chatty debug logs: keep the last 4 MiB.
	if w.buf.Len() > 8<<20 {
		keep := append([]byte(nil), w.buf.Bytes()[w.buf.Len()-4<<20:]...)
		w.buf.Reset()
		w.buf.Write(keep)
		start = 0
	}
	if !w.seen && w.word.Match(w.buf.Bytes()[start:]) {
		w.seen = true
		close(w.ready)
	}
	return len(b), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
