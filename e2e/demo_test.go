package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/freeport"
)

// TestDemo runs the README's first set-up command the way `make demo` does (the `demo` command,
// here on free ports) and follows the README's walkthrough: the seed's message.json through kcat,
// then `scan kafka_test.topic1` printing the guide's row. Once standalone (the default) and once
// registered in ZooKeeper (--zk), where scan finds the table through ZooKeeper.
func TestDemo(t *testing.T) {
	if suite.direct {
		t.Skip("direct mode: no proxy binary")
	}
	kcat := requireTool(t, "kcat", kcatInstall)
	for _, mode := range []string{"standalone", "zookeeper"} {
		t.Run(mode, func(t *testing.T) {
			base, err := freeport.Block(5)
			if err != nil {
				t.Fatal(err)
			}
			listen := "127.0.0.1:" + strconv.Itoa(base)
			ns := "127.0.0.1:" + strconv.Itoa(base+3) // base+1 is the proxy's listener for broker 0
			// Its own admin port too: a demo running on this machine holds the default 9644.
			adminAddr := "127.0.0.1:" + strconv.Itoa(base+4)
			kafkaPort, err := freeport.Block(1)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"demo", "--listen", listen, "--kafka_port", strconv.Itoa(kafkaPort), "--openmldb_nameserver", ns,
				"--admin_listen", adminAddr}
			scanArgs := []string{"scan", "--openmldb.nameserver", ns, "kafka_test.topic1"}
			if mode == "zookeeper" {
				zk := sharedZK(t)
				root := "/okp-demo-" + strconv.FormatInt(suite.zkSeq.Add(1), 10)
				args = append(args, "--zk", zk.Addr, "--zk_path", root)
				scanArgs = []string{"scan", "--openmldb.zk_cluster", zk.Addr, "--openmldb.zk_path", root, "kafka_test.topic1"}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, suite.bin, args...)
			var logs bytes.Buffer
			ready := make(chan struct{})
			cmd.Stderr = &lineWatcher{buf: &logs, word: "msg=ready", hit: ready}
			cmd.Stdout = cmd.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			var waitErr error
			go func() { waitErr = cmd.Wait(); close(exited) }()
			earlyExit := false
			defer func() {
				if earlyExit {
					return
				}
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
					if waitErr != nil {
						t.Errorf("demo did not stop cleanly on SIGTERM: %v\n%s", waitErr, logs.String())
					}
				case <-time.After(20 * time.Second):
					_ = cmd.Process.Kill()
					t.Errorf("demo still running 20s after SIGTERM")
				}
			}()
			select {
			case <-ready:
			case <-exited:
				earlyExit = true
				t.Fatalf("demo exited before it was ready (%v):\n%s", waitErr, logs.String())
			case <-time.After(60 * time.Second):
				t.Fatalf("demo not ready after 60s:\n%s", logs.String())
			}
			msg, err := filepath.Abs(filepath.Join(seedPath, "message.json"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := harness.Run(ctx, 30*time.Second, nil, nil, kcat, "-P", "-b", listen, "-t", "topic1", msg); err != nil {
				t.Fatal(err)
			}
			res, err := harness.Run(ctx, 30*time.Second, nil, nil, suite.bin, scanArgs...)
			if err != nil {
				t.Fatal(err)
			}
			const want = `{"c1_int16":1,"c2_int32":2,"c3_int64":3,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":"2022-04-27","c9_timestamp":1651051906000}`
			if got := strings.TrimSpace(res.Stdout); got != want {
				t.Fatalf("scan printed %q, want\n%s", got, want)
			}
		})
	}
}

// lineWatcher keeps a process's output and closes hit when word first appears.
type lineWatcher struct {
	buf  *bytes.Buffer
	word string
	hit  chan struct{}
	seen bool
}

func (w *lineWatcher) Write(b []byte) (int, error) {
	w.buf.Write(b)
	if !w.seen && strings.Contains(w.buf.String(), w.word) {
		w.seen = true
		close(w.hit)
	}
	return len(b), nil
}
