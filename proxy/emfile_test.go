package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/testpki"
)

// holderScript runs in a child process (so that its sockets do not count against this
// process's descriptor limit): a "broker" that accepts connections and holds them, and, once
// given a port, n client connections to it, held until told to close them.
const holderScript = `
import socket, sys, threading
b = socket.socket(); b.bind(('127.0.0.1', 0)); b.listen(4096)
print(b.getsockname()[1], flush=True)
held = []
def acc():
    while True:
        c, _ = b.accept(); held.append(c)
threading.Thread(target=acc, daemon=True).start()
line = sys.stdin.readline()
if not line.strip(): sys.exit(0)
port, n = map(int, line.split())
clients = []
for i in range(n):
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect(('127.0.0.1', port)); clients.append(s)
    except Exception as e:
        break
print('connected', len(clients), flush=True)
sys.stdin.readline()
for s in clients: s.close()
print('closed', flush=True)
sys.stdin.readline()
`

// holder is the child process of holderScript.
type holder struct {
	in   io.WriteCloser
	out  *bufio.Reader
	port string // of its broker
}

func startHolder(t *testing.T) *holder {
	t.Helper()
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd to count descriptors")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		// As elsewhere in the tests: under CI a missing system tool is a failure.
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal("CI is set and python3 is missing (apt-get install python3)")
		}
		t.Skip("needs python3 for the child holding the connections")
	}
	cmd := exec.Command("python3", "-c", holderScript)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	h := &holder{in: in, out: bufio.NewReader(out)}
	h.port = h.line(t)
	return h
}

func (h *holder) line(t *testing.T) string {
	t.Helper()
	l, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(l)
}

func (h *holder) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(h.in, s+"\n"); err != nil {
		t.Fatal(err)
	}
}

// exhaustDescriptors lowers RLIMIT_NOFILE to what the process holds plus room for ~30 clients
// (each costs the proxy two descriptors: client and broker), has the child open n connections to
// addr, waits a second while the proxy accepts what it can, then restores the limit and has the
// child close its connections.
func exhaustDescriptors(t *testing.T, h *holder, addr string, n int) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	low := orig
	low.Cur = uint64(len(ents)) + 60
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	h.send(t, port+" "+strconv.Itoa(n))
	t.Logf("child: %s", h.line(t))
	time.Sleep(time.Second)
	restore()
	h.send(t, "")
	h.line(t) // closed
	time.Sleep(500 * time.Millisecond)
}

// served reports whether a new client on addr gets an answer: an ApiVersions version the proxy
// cannot parse is answered by the proxy itself (the child's broker answers nothing).
func served(network, addr string, tlsConf *tls.Config) error {
	conn, err := net.DialTimeout(network, addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if tlsConf != nil {
		conn = tls.Client(conn, tlsConf)
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 30
	if _, err := conn.Write(reqFrame(req, 7)); err != nil {
		return err
	}
	f, err := (&rawConn{c: conn}).read()
	if err != nil {
		return err
	}
	if corr := int32(binary.BigEndian.Uint32(f[4:])); corr != 7 {
		return errors.New("wrong correlation id " + strconv.Itoa(int(corr)))
	}
	return nil
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// The accept loops (bootstrap and per-broker listeners, plain or TLS) wait out a moment without
// file descriptors and accept again once descriptors are back. The Go loops used to return on
// the first EMFILE, leaving the listener open but never accepting again; the plain bootstrap
// listener was gnet's own, whose acceptor ended the whole engine (every client closed).
func TestAcceptLoopsOutliveDescriptorExhaustion(t *testing.T) {
	t.Run("broker listener", func(t *testing.T) {
		h := startHolder(t)
		p, ports := startProxyOpts(t, []string{"127.0.0.1:" + h.port}, 1, Options{Logger: quietLogger()})
		bp, _ := strconv.Atoi(h.port)
		p.mapAddr(0, "127.0.0.1", int32(bp)) // opens node 0's listener
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		if _, open := p.BrokerAddr(0); !open {
			t.Fatal("node 0's listener did not open")
		}
		exhaustDescriptors(t, h, addr, 300)
		if err := served("tcp", addr, nil); err != nil {
			t.Fatalf("after a moment without descriptors the broker listener does not serve a new client: %v", err)
		}
	})
	t.Run("bootstrap listener", func(t *testing.T) {
		h := startHolder(t)
		p, _ := startProxyOpts(t, []string{"127.0.0.1:" + h.port}, 1, Options{Logger: quietLogger()})
		exhaustDescriptors(t, h, p.Addr(), 300)
		if err := served("tcp", p.Addr(), nil); err != nil {
			t.Fatalf("after a moment without descriptors the bootstrap listener does not serve a new client: %v", err)
		}
		select {
		case <-p.Failed():
			t.Fatalf("the proxy failed: %v", p.Err())
		default:
		}
	})
	t.Run("TLS bootstrap listener", func(t *testing.T) {
		k := testpki.New(t)
		h := startHolder(t)
		p, _ := startProxyOpts(t, []string{"127.0.0.1:" + h.port}, 1, Options{Logger: quietLogger(),
			TLS: &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile}})
		exhaustDescriptors(t, h, p.Addr(), 300)
		if err := served("tcp", p.Addr(), &tls.Config{RootCAs: k.Pool, ServerName: "127.0.0.1"}); err != nil {
			t.Fatalf("after a moment without descriptors the TLS listener does not serve a new client: %v", err)
		}
	})
}

// The engine's own listener (engineAddr) serves nobody and cannot be made to: it is UDP, so
// there is no connection to accept (one would bypass client TLS), and datagrams to it are dropped
// without harm. The bootstrap address still serves afterwards, in either mode.
func TestEngineSocketServesNobody(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "plain"
		if withTLS {
			name = "client TLS"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, kfake.NumBrokers(1))
			opts := Options{Logger: quietLogger()}
			var tlsConf *tls.Config
			if withTLS {
				k := testpki.New(t)
				opts.TLS = &ServerTLS{CertFile: k.CertFile, KeyFile: k.KeyFile}
				tlsConf = &tls.Config{RootCAs: k.Pool, ServerName: "127.0.0.1"}
			}
			p, _ := startProxyOpts(t, c.ListenAddrs(), 1, opts)
			network, addr, ok := strings.Cut(p.EngineAddr(), "://")
			if !ok || network != "udp4" {
				t.Fatalf("engine address %q, want udp4://…", p.EngineAddr())
			}
			if err := served("tcp", addr, nil); err == nil {
				t.Error("a TCP client on the engine's own port was served")
			}
			u, err := net.Dial("udp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			req := kmsg.NewPtrApiVersionsRequest()
			for range 100 {
				if _, err := u.Write(reqFrame(req, 7)); err != nil {
					t.Fatal(err)
				}
			}
			u.Close()
			if err := served("tcp", p.Addr(), tlsConf); err != nil {
				t.Errorf("bootstrap listener after datagrams to the engine's socket: %v", err)
			}
			select {
			case <-p.Failed():
				t.Fatalf("the proxy failed: %v", p.Err())
			default:
			}
		})
	}
}

// An engine that stops without Close (here: gnet's global Stop) fails the proxy: Failed is
// closed, Err and Ready say why, the broker listeners close so clients go elsewhere, and Close
// still works.
func TestEngineStoppingByItselfFailsTheProxy(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	p, ports := startProxyOpts(t, c.ListenAddrs(), 1, Options{Logger: quietLogger()})
	ctx := testCtx(t, 10*time.Second)
	for _, open := p.BrokerAddr(0); !open; _, open = p.BrokerAddr(0) {
		if ctx.Err() != nil {
			t.Fatal("node 0's listener did not open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Ready(ctx); err != nil {
		t.Fatalf("Ready before anything happened: %v", err)
	}
	if err := gnet.Stop(ctx, p.EngineAddr()); err != nil { //nolint:staticcheck // the only way to stop it from outside
		t.Fatal(err)
	}
	select {
	case <-p.Failed():
	case <-ctx.Done():
		t.Fatal("the engine stopped and the proxy does not report itself failed")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "gnet engine stopped") {
		t.Errorf("Err: %v", err)
	}
	if err := p.Ready(ctx); err == nil || !strings.Contains(err.Error(), "gnet engine stopped") {
		t.Errorf("Ready: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(ports[0]), time.Second); err == nil {
		conn.Close()
		t.Error("a broker listener still accepts after the engine stopped")
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		t.Errorf("Close after the engine stopped: %v", err)
	}
}
