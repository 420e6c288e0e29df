package openmldbtest

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
)

// partKey names one partition replica on a tablet.
type partKey struct {
	tid uint32
	pid uint32
}

// tablet is one tablet server: its own listener, its own ZooKeeper session (so stopping it makes
// its ephemeral node disappear) and the partition replicas it holds.
type tablet struct {
	c        *Cluster
	idx      int
	endpoint string
	srv      *rpcServer
	zkc      *zk.Conn
	started  time.Time
	stopped  atomic.Bool
	done     chan struct{} // closed on stop: aborts stalled Puts
	stopOnce sync.Once

	mu    sync.RWMutex
	parts map[partKey]*partition
}

func startTablet(ctx context.Context, c *Cluster, idx int, auth func([]byte) bool) (*tablet, error) {
	t := &tablet{c: c, idx: idx, started: time.Now(), done: make(chan struct{}), parts: map[partKey]*partition{}}
	// Requests are served inline unless a stall is in effect, so a held Put does not hold up
	// the rest of its connection.
	srv, err := newRPCServer("", c.log.With("server", "tablet", "tablet", idx), auth,
		func() bool { return !c.faults.stalling() }, c.opts.ConcurrentReads, t.service())
	if err != nil {
		return nil, err
	}
	t.srv = srv
	t.endpoint = srv.addr()
	if c.opts.ZK != "" {
		conn, err := dialZK(ctx, c.opts.ZK, c.log, t.reregister)
		if err != nil {
			srv.close()
			return nil, err
		}
		t.zkc = conn
		// ZkClient::Register: ephemeral <root>/nodes/<endpoint> holding "startup_<endpoint>".
		if _, err := conn.Create(path.Join(c.paths.nodes, t.endpoint), []byte("startup_"+t.endpoint),
			zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			conn.Close()
			srv.close()
			return nil, fmt.Errorf("register %s: %w", t.endpoint, err)
		}
	}
	return t, nil
}

// reregister re-creates the tablet's ephemeral node in a new session, as OpenMLDB's tablet
// does after reconnecting (holding its endpoint; "startup_" marks only the first registration).
func (t *tablet) reregister(conn *zk.Conn) {
	if t.stopped.Load() {
		return
	}
	p := path.Join(t.c.paths.nodes, t.endpoint)
	_, err := conn.Create(p, []byte(t.endpoint), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.c.log.Warn("tablet re-register failed", "endpoint", t.endpoint, "err", err)
	}
}

// stop closes the listener and every connection and ends the ZooKeeper session.
func (t *tablet) stop() {
	t.stopOnce.Do(func() {
		t.stopped.Store(true)
		close(t.done)
		if t.srv != nil {
			t.srv.close()
		}
		if t.zkc != nil {
			t.zkc.Close()
		}
	})
}

func (t *tablet) partition(tid, pid uint32) *partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.parts[partKey{tid, pid}]
}

func (t *tablet) addPartition(tid, pid uint32, p *partition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.parts[partKey{tid, pid}] = p
}

func (t *tablet) removePartition(tid, pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.parts, partKey{tid, pid})
}

func (t *tablet) service() *service {
	put := typed(func() *apipb.PutRequest { return &apipb.PutRequest{} }, t.put)
	put.reusable = true
	return &service{name: tabletServerService, methods: map[string]method{
		"Put":      put,
		"Get":      typed(func() *apipb.GetRequest { return &apipb.GetRequest{} }, t.get),
		"Scan":     typed(func() *apipb.ScanRequest { return &apipb.ScanRequest{} }, t.scan),
		"Traverse": typed(func() *apipb.TraverseRequest { return &apipb.TraverseRequest{} }, t.traverse),
		"Count":    typed(func() *apipb.CountRequest { return &apipb.CountRequest{} }, t.count),
	}}
}
