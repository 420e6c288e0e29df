package openmldb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// zkSessionTimeout matches the SDK's default (src/sdk/options.h).
const zkSessionTimeout = 2 * time.Second

// DefaultZKPath is OpenMLDB's default --zk_root_path.
const DefaultZKPath = "/openmldb"

// zkDiscovery reads the cluster's metadata from ZooKeeper the way ClusterSDK does.
type zkDiscovery struct {
	conn *zk.Conn
	root string
	log  *slog.Logger
}

type zkLogger struct{ log *slog.Logger }

// Printf implements zk.Logger, at debug level.
func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("openmldb: zookeeper: " + fmt.Sprintf(format, args...))
}

func dialZK(ctx context.Context, servers, root, auth string, log *slog.Logger) (*zkDiscovery, error) {
	var hosts []string
	for _, h := range strings.Split(servers, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, errors.New("zookeeper: no servers given")
	}
	conn, events, err := zk.Connect(hosts, zkSessionTimeout, zk.WithLogger(zkLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("zookeeper %s: %w", servers, err)
	}
	// Wait for the first session so the initial catalog load does not race the handshake.
wait:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, fmt.Errorf("zookeeper %s: connection closed", servers)
			}
			if ev.State == zk.StateHasSession {
				break wait
			}
			if ev.State == zk.StateAuthFailed {
				conn.Close()
				return nil, fmt.Errorf("zookeeper %s: authentication failed", servers)
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("zookeeper %s: no session: %w", servers, ctx.Err())
		}
	}
	go func() {
		for ev := range events {
			if ev.Type == zk.EventSession {
				log.Debug("openmldb: zookeeper session", "state", ev.State.String())
			}
		}
	}()
	if auth != "" {
		// go-zookeeper re-sends stored credentials whenever it re-establishes a session.
		if err := conn.AddAuth("digest", []byte(auth)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("zookeeper digest auth: %w", err)
		}
	}
	return &zkDiscovery{conn: conn, root: strings.TrimRight(root, "/"), log: log}, nil
}

func (d *zkDiscovery) p(parts ...string) string {
	return path.Join(append([]string{d.root}, parts...)...)
}

// resolve maps a server name to its dial address: map/sdkendpoints, then map/names, then itself.
func (d *zkDiscovery) resolve(name string) (string, error) {
	for _, dir := range []string{"sdkendpoints", "names"} {
		b, _, err := d.conn.Get(d.p("map", dir, name))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("zookeeper get map/%s/%s: %w", dir, name, err)
		}
		if len(b) > 0 {
			return string(b), nil
		}
	}
	return name, nil
}

// tablets lists <root>/nodes and resolves each tablet's address.
func (d *zkDiscovery) tablets() (map[string]string, error) {
	children, _, err := d.conn.Children(d.p("nodes"))
	if errors.Is(err, zk.ErrNoNode) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("zookeeper list nodes: %w", err)
	}
	out := make(map[string]string, len(children))
	for _, c := range children {
		name := stripTabletPrefix(c)
		addr, err := d.resolve(name)
		if err != nil {
			return nil, err
		}
		out[name] = addr
	}
	return out, nil
}

// nameserver returns the leader's address: the smallest child of <root>/leader, resolved.
func (d *zkDiscovery) nameserver() (string, error) {
	children, _, err := d.conn.Children(d.p("leader"))
	if errors.Is(err, zk.ErrNoNode) || (err == nil && len(children) == 0) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("zookeeper list leader: %w", err)
	}
	sort.Strings(children)
	b, _, err := d.conn.Get(d.p("leader", children[0]))
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil // lost the race with a leader change; the leader watch fires again
	}
	if err != nil {
		return "", fmt.Errorf("zookeeper get leader/%s: %w", children[0], err)
	}
	if len(b) == 0 {
		return "", nil
	}
	return d.resolve(string(b))
}

// tableInfos reads every <root>/table/db_table_data/<tid>.
func (d *zkDiscovery) tableInfos() ([]*nspb.TableInfo, error) {
	dir := d.p("table", "db_table_data")
	children, _, err := d.conn.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("zookeeper list table/db_table_data: %w", err)
	}
	out := make([]*nspb.TableInfo, 0, len(children))
	for _, c := range children {
		b, _, err := d.conn.Get(path.Join(dir, c))
		if errors.Is(err, zk.ErrNoNode) {
			continue // dropped meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("zookeeper get table/db_table_data/%s: %w", c, err)
		}
		info := &nspb.TableInfo{}
		if err := proto.Unmarshal(b, info); err != nil {
			return nil, fmt.Errorf("table/db_table_data/%s: parse TableInfo: %w", c, err)
		}
		out = append(out, info)
	}
	return out, nil
}

// load builds a fresh catalog from ZooKeeper.
func (d *zkDiscovery) load() (*catalog, error) {
	tablets, err := d.tablets()
	if err != nil {
		return nil, err
	}
	infos, err := d.tableInfos()
	if err != nil {
		return nil, err
	}
	ns, err := d.nameserver()
	if err != nil {
		return nil, err
	}
	cat, errs := buildCatalog(tablets, infos, ns)
	for _, e := range errs {
		d.log.Warn("openmldb: skipping table", "err", e)
	}
	return cat, nil
}

// watch keeps the catalog fresh: it installs a data watch on table/notify and a children watch
// on leader/, rebuilds the catalog, and repeats whenever one fires. A lost session fires both
// watches (EventNotWatching); the loop then retries until go-zookeeper has a new session, so the
// watches are re-installed and the catalog rebuilt.
func (d *zkDiscovery) watch(ctx context.Context, nextGen func() uint64, store func(*catalog)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		notifyW, leaderW, err := d.installWatches()
		if err == nil {
			gen := nextGen()
			var cat *catalog
			if cat, err = d.load(); err == nil {
				cat.gen = gen
				store(cat)
				backoff = 100 * time.Millisecond
				select {
				case <-ctx.Done():
					return
				case ev := <-notifyW:
					d.log.Debug("openmldb: table notify", "type", ev.Type.String())
				case ev := <-leaderW:
					d.log.Debug("openmldb: nameserver leader changed", "type", ev.Type.String())
				}
				continue
			}
		}
		d.log.Warn("openmldb: catalog refresh from zookeeper failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (d *zkDiscovery) installWatches() (<-chan zk.Event, <-chan zk.Event, error) {
	notify := d.p("table", "notify")
	_, _, notifyW, err := d.conn.GetW(notify)
	if errors.Is(err, zk.ErrNoNode) {
		_, _, notifyW, err = d.conn.ExistsW(notify)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("zookeeper watch table/notify: %w", err)
	}
	leader := d.p("leader")
	_, _, leaderW, err := d.conn.ChildrenW(leader)
	if errors.Is(err, zk.ErrNoNode) {
		_, _, leaderW, err = d.conn.ExistsW(leader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("zookeeper watch leader: %w", err)
	}
	return notifyW, leaderW, nil
}

func (d *zkDiscovery) close() { d.conn.Close() }
