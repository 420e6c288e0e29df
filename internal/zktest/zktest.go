// Package zktest starts a real ZooKeeper (Debian's zookeeper package) on a free loopback port for
// tests and the demo. It never mocks: when the jar or java is missing it says how to install them.
package zktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
)

// Jar is where Debian's zookeeper package puts the server jar; its manifest lists every dependency.
const Jar = "/usr/share/java/zookeeper.jar"

// Server is a running standalone ZooKeeper.
type Server struct {
	// Addr is host:port of the client port.
	Addr string
	java string
	cfg  string // zoo.cfg path
	dir  string

	mu      sync.Mutex // serializes Restart and Stop
	stopped bool
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	log     *bytes.Buffer
}

// ErrUnavailable is returned when java or the ZooKeeper jar is not installed.
var ErrUnavailable = errors.New("zookeeper not installed: run `apt-get install -y --no-install-recommends zookeeper` (needs java)")

// Start launches ZooKeeper on a free loopback port and waits until it answers `ruok`.
func Start(ctx context.Context) (*Server, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrUnavailable
	}
	if _, err := os.Stat(Jar); err != nil {
		return nil, ErrUnavailable
	}
	dir, err := os.MkdirTemp("", "okp-zk-")
	if err != nil {
		return nil, fmt.Errorf("zookeeper temp dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("zookeeper data dir: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, java: java}
	if s.cfg, err = s.writeConfig("zoo.cfg", port); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.launch(ctx, s.cfg, s.Addr); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// launch starts java with config cfg and waits until it answers `ruok` on addr; on failure the
// process is gone.
func (s *Server) launch(ctx context.Context, cfg, addr string) error {
	s.log = &bytes.Buffer{}
	s.done = make(chan struct{})
	s.cmd = exec.Command(s.java, "-Xmx256m", "-cp", Jar, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	// Its own process group, so a test binary killed by a timeout does not leave java behind
	// holding the port forever: Pdeathsig ends it with us.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		close(s.done)
		return fmt.Errorf("start zookeeper: %w", err)
	}
	cmd, done := s.cmd, s.done
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ruok(addr) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("zookeeper exited before it was ready: %s", s.log.String())
		case <-ctx.Done():
			s.kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("zookeeper on %s not ready after 30s", addr)
		}
	}
}

// kill ends the java process group and waits for it.
func (s *Server) kill() {
	if s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-s.done
}

// Stop kills the server and removes its data.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	s.kill()
	os.RemoveAll(s.dir)
}

// Pause stops the server's process (SIGSTOP) without closing anything: clients stay connected
// and their requests hang, as with a ZooKeeper that stopped answering. Resume continues it.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.cmd.Process == nil {
		return errors.New("zookeeper: server stopped")
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("zookeeper: %v: %w", sig, err)
	}
	return nil
}

// Restart takes the server away from its clients for downtime, then serves again on the same
// port with the same data directory, so persistent znodes survive. It kills java (SIGKILL, like
// a crash) and, for the downtime, runs it on a private port: ZooKeeper persists sessions and
// restores them with a fresh timeout on start, so a plain kill and restart would let every
// client resume its session. Running unreachable instead lets sessions expire as they do for
// clients cut off from a live ensemble: a session whose timeout plus one tick (2s) is shorter
// than downtime expires and its ephemeral nodes are deleted; its client gets StateExpired on
// reconnecting and then a new session. Restart returns once the server answers `ruok` on Addr.
func (s *Server) Restart(downtime time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("zookeeper restart: server stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.kill()
	if downtime > 0 {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("zookeeper restart: %w", err)
		}
		private, err := s.writeConfig("zoo-private.cfg", port)
		if err != nil {
			return fmt.Errorf("zookeeper restart: %w", err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if err := s.launch(ctx, private, addr); err != nil {
			return fmt.Errorf("zookeeper restart (unreachable phase on %s): %w", addr, err)
		}
		time.Sleep(downtime)
		s.kill()
	}
	if err := s.launch(ctx, s.cfg, s.Addr); err != nil {
		return fmt.Errorf("zookeeper restart on %s: %w", s.Addr, err)
	}
	return nil
}

// writeConfig writes a zoo.cfg for port into the server's directory and returns its path.
func (s *Server) writeConfig(name string, port int) (string, error) {
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\n",
		filepath.Join(s.dir, "data"), port)
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("zookeeper config: %w", err)
	}
	return p, nil
}

// TB is the part of testing.TB that StartT needs (kept small so this package does not import testing).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// StartT starts a server for a test and stops it when the test ends. A missing installation fails
// the test: ZooKeeper is a declared test dependency that `make test` installs.
func StartT(t TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx)
	if err != nil {
		t.Fatalf("zookeeper: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func ruok(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ruok")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return string(b) == "imok"
}

// freePort is a port for ZooKeeper to listen on, outside the ephemeral range (freeport.Block).
func freePort() (int, error) { return freeport.Block(1) }
