package openmldb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Default option values.
const (
	DefaultRPCTimeout  = 20 * time.Second // the SDK's --request_timeout_ms
	DefaultMaxInFlight = 1024
	DefaultUser        = "root"
)

// Options configures a Client. Exactly one of ZKCluster (cluster mode) or Nameserver
// (standalone mode, or any cluster without using ZooKeeper) must be set.
type Options struct {
	// ZKCluster is the ZooKeeper connect string (host:port[,host:port...]).
	ZKCluster string
	// ZKPath is the cluster's root znode; default /openmldb.
	ZKPath string
	// ZKAuth is "user:password" for ZooKeeper digest auth; empty for none.
	ZKAuth string
	// Nameserver is the nameserver address for standalone mode.
	Nameserver string
	// User and Password form the brpc credential; User defaults to root.
	User     string
	Password string
	// RPCTimeout bounds each RPC (also by the caller's context); default 20s.
	RPCTimeout time.Duration
	// MaxInFlight bounds the Puts in flight across all writes; default 1024.
	MaxInFlight int
	// Logger receives diagnostics; default slog.Default().
	Logger *slog.Logger
	// OnRPC, if set, is told the endpoint, duration and outcome (nil or the error) of every
	// RPC, Puts included, from the connection's reader; it must be fast and must not block.
	OnRPC func(endpoint string, d time.Duration, err error)
}

// Client talks to one OpenMLDB cluster. It is safe for concurrent use.
type Client struct {
	opts  Options
	log   *slog.Logger
	pool  *rpcPool
	lanes laneConns
	// Puts sent on lane connections and on the shared ones (PutCounts).
	lanePuts, sharedPuts atomic.Uint64
	zk                   *zkDiscovery
	cat                  atomic.Pointer[catalog]
	inflight             chan struct{}
	stamps               *putStamps // Put times of rows on indexes without a TS column
	ties                 *tieGate   // order of rows tying on an index with a TS column
	afterTieEnter        func()     // tests: runs between a round's tie-gate enter and its issue

	refreshMu   sync.Mutex
	zkLoading   *zkLoad // the ZooKeeper catalog load running, if any (refreshMu)
	gen         atomic.Uint64
	refreshedAt atomic.Int64 // start time (unix ns) of the newest successful Refresh
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// Open connects to the cluster and loads the catalog. In cluster mode it also starts the
// ZooKeeper watches that keep the catalog fresh.
func Open(ctx context.Context, opts Options) (*Client, error) {
	if (opts.ZKCluster == "") == (opts.Nameserver == "") {
		return nil, errors.New("openmldb: set exactly one of zk_cluster or nameserver")
	}
	if opts.ZKPath == "" {
		opts.ZKPath = DefaultZKPath
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	if opts.RPCTimeout <= 0 {
		opts.RPCTimeout = DefaultRPCTimeout
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{
		opts:     opts,
		log:      opts.Logger,
		pool:     newRPCPool(Credential(opts.User, opts.Password), opts.RPCTimeout, opts.Logger),
		inflight: make(chan struct{}, opts.MaxInFlight),
		stamps:   newPutStamps(time.Now().UnixMilli() + maxStampLead + 1),
		ties:     newTieGate(),
	}
	c.pool.observe = opts.OnRPC
	if opts.ZKCluster != "" {
		d, err := dialZK(ctx, opts.ZKCluster, opts.ZKPath, opts.ZKAuth, opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("openmldb: %w", err)
		}
		c.zk = d
	}
	if err := c.Refresh(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("openmldb: initial catalog: %w", err)
	}
	if c.zk != nil {
		wctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.zk.watch(wctx, c.nextGen, c.store)
		}()
	}
	return c, nil
}

// Close stops the watches and closes every connection.
func (c *Client) Close() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.zk != nil {
		c.zk.close()
	}
	c.closeLanes()
	c.pool.close()
}

// Refresh rebuilds the catalog now: from ZooKeeper in cluster mode, from ShowTablet/ShowTable
// on the nameserver in standalone mode.
func (c *Client) Refresh(ctx context.Context) error {
	need := time.Now().UnixNano()
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return c.refreshLocked(ctx, need)
}

// refreshSince refreshes unless a refresh that started at or after since already succeeded, so
// many writers retrying at once share one catalog reload.
func (c *Client) refreshSince(ctx context.Context, since time.Time) error {
	if c.refreshedAt.Load() >= since.UnixNano() {
		return nil
	}
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if c.refreshedAt.Load() >= since.UnixNano() {
		return nil
	}
	return c.refreshLocked(ctx, since.UnixNano())
}

// zkLoad is a catalog load from ZooKeeper. go-zookeeper calls take no context, so the load runs
// aside and ctx bounds only the wait for it; a refresh whose ctx ends leaves it running, and the
// next refresh waits for that load instead of starting another. While ZooKeeper hangs, writers
// retrying their refreshes would otherwise leave a goroutine each until it answers again.
type zkLoad struct {
	start int64  // unix ns
	gen   uint64 // of the catalog it loads
	done  chan struct{}
	cat   *catalog
	err   error
}

func (c *Client) refreshLocked(ctx context.Context, need int64) error {
	start := time.Now().UnixNano()
	if c.zk != nil {
		for {
			l := c.zkLoading
			if l == nil {
				l = &zkLoad{start: time.Now().UnixNano(), gen: c.nextGen(), done: make(chan struct{})}
				c.zkLoading = l
				go func() {
					defer close(l.done)
					l.cat, l.err = c.zk.load()
					if l.err == nil {
						l.cat.gen = l.gen
					}
				}()
			}
			select {
			case <-l.done:
				c.zkLoading = nil
				if l.err == nil {
					c.store(l.cat)
					c.markRefreshed(l.start)
				}
				if l.start < need {
					// Started before what this refresh asks for (a load a timed-out refresh
					// left running): it may have read the catalog before the change the caller
					// waits for. Load again; only one load runs at a time all the same.
					continue
				}
				return l.err
			case <-ctx.Done():
				return fmt.Errorf("refresh from zookeeper: %w", ctx.Err())
			}
		}
	}
	gen := c.nextGen()
	cat, errs, err := loadFromNameserver(ctx, c.pool, c.opts.Nameserver)
	if err != nil {
		return err
	}
	for _, e := range errs {
		c.log.Warn("openmldb: skipping table", "err", e)
	}
	cat.gen = gen
	c.store(cat)
	c.markRefreshed(start)
	return nil
}

func (c *Client) markRefreshed(start int64) {
	for {
		old := c.refreshedAt.Load()
		if old >= start || c.refreshedAt.CompareAndSwap(old, start) {
			return
		}
	}
}

func (c *Client) nextGen() uint64 { return c.gen.Add(1) }

// store publishes cat unless a snapshot whose load started later is already published.
func (c *Client) store(cat *catalog) {
	for {
		old := c.cat.Load()
		if old != nil && old.gen > cat.gen {
			return
		}
		if c.cat.CompareAndSwap(old, cat) {
			return
		}
	}
}

// Table returns the catalog's current view of db.name.
func (c *Client) Table(db, name string) (*Table, error) {
	cat := c.cat.Load()
	if cat == nil {
		return nil, fmt.Errorf("%s.%s: %w", db, name, ErrTableNotFound)
	}
	t := cat.tables[tableKey(db, name)]
	if t == nil {
		return nil, fmt.Errorf("%s.%s: %w", db, name, ErrTableNotFound)
	}
	return t, nil
}

// Tables lists the tables in the catalog as "db.name", sorted.
func (c *Client) Tables() []string {
	cat := c.cat.Load()
	if cat == nil {
		return nil
	}
	return cat.tableNames()
}

// Tablets returns the known tablets, name to dial address.
func (c *Client) Tablets() map[string]string {
	out := map[string]string{}
	if cat := c.cat.Load(); cat != nil {
		for k, v := range cat.tablets {
			out[k] = v
		}
	}
	return out
}

// nameserver returns the nameserver leader's address.
func (c *Client) nameserver(ctx context.Context) (string, error) {
	if c.zk == nil {
		return c.opts.Nameserver, nil
	}
	if cat := c.cat.Load(); cat != nil && cat.nameserver != "" {
		return cat.nameserver, nil
	}
	if err := c.Refresh(ctx); err != nil {
		return "", err
	}
	if cat := c.cat.Load(); cat != nil && cat.nameserver != "" {
		return cat.nameserver, nil
	}
	return "", fmt.Errorf("openmldb: no nameserver leader registered in zookeeper under %s/leader (is openmldb.zk_path %s the cluster's zk_root_path?)", c.zk.root, c.zk.root)
}
