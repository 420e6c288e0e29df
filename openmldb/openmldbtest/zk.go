package openmldbtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkSessionTimeout is short so that an abandoned session (a crashed test) frees its ephemeral
// nodes quickly; explicit Close frees them at once.
const zkSessionTimeout = 4 * time.Second

// zkLogger routes the ZooKeeper library's Printf logging into slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zk")
}

// dialZK opens a ZooKeeper session and waits until it is established. When that session later
// expires and go-zookeeper establishes a new one, renew runs (on its own goroutine) so the
// caller can re-create its ephemeral nodes, as OpenMLDB's servers do after a reconnect; nil
// for none.
func dialZK(ctx context.Context, addr string, log *slog.Logger, renew func(*zk.Conn)) (*zk.Conn, error) {
	conn, events, err := zk.Connect(strings.Split(addr, ","), zkSessionTimeout,
		zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("connect zookeeper %s: %w", addr, err)
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				conn.Close()
				return nil, fmt.Errorf("connect zookeeper %s: event channel closed", addr)
			}
			if ev.State == zk.StateHasSession {
				// The library keeps sending events; drain them so it never blocks.
				go func() {
					expired := false
					for ev := range events {
						switch ev.State {
						case zk.StateExpired:
							expired = true
						case zk.StateHasSession:
							if expired && renew != nil {
								log.Info("zookeeper session renewed; re-registering", "session", conn.SessionID())
								go renew(conn)
							}
							expired = false
						}
					}
				}()
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("connect zookeeper %s: %w", addr, ctx.Err())
		}
	}
}

// zkPaths are the znodes OpenMLDB's nameserver and tablets use under the root path.
type zkPaths struct {
	root       string
	leader     string // ephemeral sequential lock_request children
	nodes      string // tablet ephemerals
	db         string // one child per database
	tableData  string // db_table_data/<tid>
	notify     string // ASCII counter
	tableIndex string // last tid
}

func newZKPaths(root string) zkPaths {
	return zkPaths{
		root:       root,
		leader:     path.Join(root, "leader"),
		nodes:      path.Join(root, "nodes"),
		db:         path.Join(root, "db"),
		tableData:  path.Join(root, "table", "db_table_data"),
		notify:     path.Join(root, "table", "notify"),
		tableIndex: path.Join(root, "table", "table_index"),
	}
}

// ensurePath creates p and its missing parents as persistent nodes with empty data.
func ensurePath(conn *zk.Conn, p string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		_, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create znode %s: %w", cur, err)
		}
	}
	return nil
}

// createOrSet writes data to a persistent node, creating it when missing.
func createOrSet(conn *zk.Conn, p string, data []byte) error {
	_, err := conn.Create(p, data, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = conn.Set(p, data, -1)
	}
	if err != nil {
		return fmt.Errorf("write znode %s: %w", p, err)
	}
	return nil
}

// bumpCounter increments an ASCII decimal counter node with a version check, retrying on races
// exactly like OpenMLDB's notify update (other writers, e.g. SDK TriggerNotify, may bump it too).
func bumpCounter(conn *zk.Conn, p string) error {
	for attempt := 0; attempt < 100; attempt++ {
		data, st, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			_, err = conn.Create(p, []byte("1"), 0, zk.WorldACL(zk.PermAll))
			if err == nil || errors.Is(err, zk.ErrNodeExists) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("read counter %s: %w", p, err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return fmt.Errorf("counter %s holds %q: %w", p, data, err)
		}
		_, err = conn.Set(p, []byte(strconv.FormatUint(n+1, 10)), st.Version)
		if errors.Is(err, zk.ErrBadVersion) {
			continue
		}
		if err != nil {
			return fmt.Errorf("bump counter %s: %w", p, err)
		}
		return nil
	}
	return fmt.Errorf("bump counter %s: too many concurrent updates", p)
}
