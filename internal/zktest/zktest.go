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
	"syscall"
	"time"
)

// Jar is where Debian's zookeeper package puts the server jar; its manifest lists every dependency.
const Jar = "/usr/share/java/zookeeper.jar"

// Server is a running standalone ZooKeeper.
type Server struct {
	// Addr is host:port of the client port.
	Addr string
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	log  *bytes.Buffer
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
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\n",
		filepath.Join(dir, "data"), port)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("zookeeper data dir: %w", err)
	}
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("zookeeper config: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, done: make(chan struct{}), log: &bytes.Buffer{}}
	s.cmd = exec.Command(java, "-Xmx256m", "-cp", Jar, "org.apache.zookeeper.server.ZooKeeperServerMain", cfgPath)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	// Its own process group, so a test binary killed by a timeout does not leave java behind
	// holding the port forever: Pdeathsig ends it with us.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start zookeeper: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ruok(s.Addr) {
			return s, nil
		}
		select {
		case <-s.done:
			out := s.log.String()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("zookeeper exited before it was ready: %s", out)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("zookeeper on %s not ready after 30s", s.Addr)
		}
	}
}

// Stop kills the server and removes its data.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-s.done
	os.RemoveAll(s.dir)
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
