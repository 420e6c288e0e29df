package openmldbtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
)

// Options configures Start. The zero value gives a standalone cluster (no ZooKeeper) with one
// tablet.
type Options struct {
	// ZK is the ZooKeeper connect string (host:port[,host:port]); empty runs standalone, where
	// clients find tables through the nameserver's ShowTablet/ShowTable.
	ZK string
	// ZKPath is the cluster's root znode (OpenMLDB's --zk_root_path); default /openmldb. It must
	// not already hold another cluster's databases or tables.
	ZKPath string
	// Tablets is the number of tablet servers; default 3 with ZooKeeper, 1 standalone.
	Tablets int
	// Logger receives the cluster's logs; default discards them.
	Logger *slog.Logger
	// RequireAuth makes every server check the credential of the first request on each
	// connection (authentication_data = "u<User>:1<sha256hex(Password)>", or the service token
	// "sdefault"); a wrong or missing one gets error_code 1004 and the connection is closed.
	RequireAuth bool
	// User and Password are the accepted credential when RequireAuth is set; default root / "".
	User, Password string
	// NameserverAddr is where the nameserver listens; default a free loopback port. Tablets
	// always take free loopback ports (clients find them through the nameserver or ZooKeeper).
	NameserverAddr string
	// AutoFailover makes StopTablet promote a live follower for every partition the stopped
	// tablet led (OpenMLDB's --auto_failover=true). Without it the stopped tablet's replicas are
	// only marked is_alive=false, as OpenMLDB does by default.
	AutoFailover bool
	// ConcurrentReads makes tablets dispatch requests as brpc's InputMessenger::OnNewMessages
	// does: of the complete frames one read buffered, every one but the last runs on a goroutine
	// of its own (concurrently, in no particular order), the last inline. Answers leave as they
	// finish. Pipelined Puts of one connection may then be applied out of order.
	ConcurrentReads bool
}

// Cluster is a running in-process OpenMLDB-compatible cluster: one nameserver and N tablets.
type Cluster struct {
	opts       Options
	log        *slog.Logger
	standalone bool
	paths      zkPaths
	zkc        *zk.Conn // the nameserver's session; nil standalone
	ns         *rpcServer
	tablets    []*tablet
	started    time.Time

	ddlMu   sync.Mutex // serializes metadata changes and their ZooKeeper writes
	mu      sync.RWMutex
	dbs     map[string]struct{}
	tables  map[uint32]*table
	byName  map[string]*table // db + "\x00" + name
	lastTid uint32

	faults faults

	closeOnce sync.Once
}

// Start runs a cluster until Close. With Options.ZK set, it registers in ZooKeeper like
// OpenMLDB: the nameserver's <root>/leader/lock_request<seq>, every tablet's <root>/nodes/<ip:port>,
// and creates <root>/db, <root>/table/db_table_data, <root>/table/notify ("1") and
// <root>/table/table_index.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c := &Cluster{opts: opts, log: opts.Logger, standalone: opts.ZK == "", started: time.Now(),
		dbs: map[string]struct{}{}, tables: map[uint32]*table{}, byName: map[string]*table{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.opts.ZKPath == "" {
		c.opts.ZKPath = "/openmldb"
	}
	if c.opts.User == "" {
		c.opts.User = "root"
	}
	if c.opts.Tablets <= 0 {
		c.opts.Tablets = 3
		if c.standalone {
			c.opts.Tablets = 1
		}
	}
	c.paths = newZKPaths(c.opts.ZKPath)
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.log.Info("openmldbtest cluster started", "nameserver", c.ns.addr(), "tablets", c.Tablets(), "zk", c.opts.ZK, "zk_path", c.opts.ZKPath)
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	var auth func([]byte) bool
	if c.opts.RequireAuth {
		sum := sha256.Sum256([]byte(c.opts.Password))
		want := "u" + c.opts.User + ":1" + hex.EncodeToString(sum[:])
		auth = func(b []byte) bool { return string(b) == want || string(b) == "sdefault" }
	}
	if !c.standalone {
		conn, err := dialZK(ctx, c.opts.ZK, c.log, c.recompete)
		if err != nil {
			return fmt.Errorf("nameserver: %w", err)
		}
		c.zkc = conn
		if err := c.initZK(); err != nil {
			return err
		}
	}
	for i := 0; i < c.opts.Tablets; i++ {
		t, err := startTablet(ctx, c, i, auth)
		if err != nil {
			return fmt.Errorf("tablet %d: %w", i, err)
		}
		c.tablets = append(c.tablets, t)
	}
	ns, err := newRPCServer(c.opts.NameserverAddr, c.log.With("server", "nameserver"), auth, nil, false, c.nameServerService())
	if err != nil {
		return fmt.Errorf("nameserver: %w", err)
	}
	c.mu.Lock()
	c.ns = ns
	c.mu.Unlock()
	if c.zkc != nil {
		if _, err := c.zkc.Create(c.paths.leader+"/lock_request", []byte(ns.addr()),
			zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
			return fmt.Errorf("nameserver leader lock: %w", err)
		}
	}
	return nil
}

// initZK creates the persistent layout and refuses a root that already holds a cluster's data.
func (c *Cluster) initZK() error {
	for _, p := range []string{c.paths.leader, c.paths.nodes, c.paths.db, c.paths.tableData} {
		if err := ensurePath(c.zkc, p); err != nil {
			return err
		}
	}
	for _, p := range []string{c.paths.leader, c.paths.db, c.paths.tableData} {
		kids, _, err := c.zkc.Children(p)
		if err != nil {
			return fmt.Errorf("list %s: %w", p, err)
		}
		if len(kids) > 0 {
			return fmt.Errorf("zk path %s already holds a cluster (%s has %d children); use a fresh ZKPath", c.paths.root, p, len(kids))
		}
	}
	if _, err := c.zkc.Create(c.paths.notify, []byte("1"), 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create %s: %w", c.paths.notify, err)
	}
	if _, err := c.zkc.Create(c.paths.tableIndex, []byte("0"), 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create %s: %w", c.paths.tableIndex, err)
	}
	return nil
}

// Close stops the nameserver and every tablet and closes their ZooKeeper sessions (their
// ephemeral nodes disappear; persistent metadata stays, as with a real cluster shutdown).
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		if c.ns != nil {
			c.ns.close()
		}
		for _, t := range c.tablets {
			t.stop()
		}
		if c.zkc != nil {
			c.zkc.Close()
		}
	})
}

// Nameserver returns the nameserver's host:port.
func (c *Cluster) Nameserver() string { return c.ns.addr() }

// ZKPath returns the cluster's root znode ("" when standalone).
func (c *Cluster) ZKPath() string {
	if c.standalone {
		return ""
	}
	return c.paths.root
}

// Tablets returns every tablet's endpoint (host:port, also its name in ZooKeeper and TableInfo),
// indexed like StopTablet and MoveLeader's tablet arguments; stopped tablets are included.
func (c *Cluster) Tablets() []string {
	out := make([]string, len(c.tablets))
	for i, t := range c.tablets {
		out[i] = t.endpoint
	}
	return out
}

// tableByID finds a table by tid.
func (c *Cluster) tableByID(tid uint32) *table {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tables[tid]
}

// lookup finds a table by database and name.
func (c *Cluster) lookup(db, name string) (*table, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.byName[db+"\x00"+name]
	if t == nil {
		return nil, fmt.Errorf("table %s.%s does not exist", db, name)
	}
	return t, nil
}

// publish writes a table's TableInfo to <root>/table/db_table_data/<tid> and bumps notify, so
// watching clients rebuild their catalog. Callers hold ddlMu.
func (c *Cluster) publish(t *table) error {
	if c.zkc == nil {
		return nil
	}
	data, err := proto.Marshal(t.snapshot())
	if err != nil {
		return fmt.Errorf("marshal TableInfo %s.%s: %w", t.db, t.name, err)
	}
	if err := createOrSet(c.zkc, path.Join(c.paths.tableData, strconv.FormatUint(uint64(t.tid), 10)), data); err != nil {
		return err
	}
	return bumpCounter(c.zkc, c.paths.notify)
}

// recompete re-enters the nameserver leader election in a new ZooKeeper session: the old
// session's lock_request node is gone, and OpenMLDB's nameserver re-creates one after
// reconnecting. With a single nameserver it wins again.
func (c *Cluster) recompete(conn *zk.Conn) {
	c.mu.RLock()
	ns := c.ns
	c.mu.RUnlock()
	if ns == nil {
		return
	}
	if _, err := conn.Create(c.paths.leader+"/lock_request", []byte(ns.addr()),
		zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrClosing) {
		c.log.Warn("nameserver re-election failed", "err", err)
	}
}
