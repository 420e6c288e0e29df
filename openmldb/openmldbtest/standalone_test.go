package openmldbtest

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/zktest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

func TestStandaloneWithAuth(t *testing.T) {
	c, err := Start(testCtx(t), Options{RequireAuth: true, Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Tablets()) != 1 || c.ZKPath() != "" {
		t.Fatalf("standalone: tablets %v zkpath %q", c.Tablets(), c.ZKPath())
	}
	// No credential: error 1004, then the connection is closed.
	anon := dial(t, c.Nameserver())
	if code, _ := anon.call(nameServerServiceName, "ShowTablet", &nspb.ShowTabletRequest{}, &nspb.ShowTabletResponse{}); code != errRPCAuth {
		t.Fatalf("unauthenticated call: %d", code)
	}
	if _, err := anon.recv(); err == nil {
		t.Fatal("connection still open after failed authentication")
	}
	sum := sha256.Sum256([]byte("secret"))
	cred := []byte("uroot:1" + hex.EncodeToString(sum[:]))
	ns := dial(t, c.Nameserver())
	ns.auth = cred
	st := &nspb.ShowTabletResponse{}
	ns.ns("ShowTablet", &nspb.ShowTabletRequest{}, st)
	if len(st.GetTablets()) != 1 || st.GetTablets()[0].GetEndpoint() != c.Tablets()[0] || st.GetTablets()[0].GetState() != tabletStateHealthy {
		t.Fatalf("ShowTablet: %v", st)
	}
	ns.auth = nil // only the first request of a connection is checked
	gr := &nspb.GeneralResponse{}
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("d")}, gr)
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("d", "t", 8, 3)}, gr)
	if gr.GetCode() != 0 {
		t.Fatalf("CreateTable: %d %s", gr.GetCode(), gr.GetMsg())
	}
	l := showTable(t, ns, "d", "t")
	if len(l.leaders) != 1 || l.info.GetReplicaNum() != 1 || l.leaders[0] != c.Tablets()[0] {
		t.Fatalf("standalone layout: %v", l.info)
	}
	tc := dial(t, l.leaders[0])
	tc.auth = cred
	for pid, req := range seedPuts(t, l, seedCells(1)) {
		if r := tc.put(req); r.GetCode() != 0 || pid != 0 {
			t.Fatalf("Put pid %d: %v", pid, r)
		}
	}
	if n, err := c.Count("d", "t"); err != nil || n != 1 {
		t.Fatalf("Count %d %v", n, err)
	}
}

func TestAutoFailover(t *testing.T) {
	zs := zktest.StartT(t)
	c, err := Start(testCtx(t), Options{ZK: zs.Addr, ZKPath: "/failover", AutoFailover: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := dial(t, c.Nameserver())
	gr := &nspb.GeneralResponse{}
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("d")}, gr)
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("d", "t", 4, 2)}, gr)
	l := showTable(t, ns, "d", "t")
	want := [][]byte{}
	for i := 0; i < 50; i++ {
		want = append(want, encodeRow(seedColumns(), seedCells(i)))
		for pid, req := range seedPuts(t, l, seedCells(i)) {
			if r := dial(t, l.leaders[pid]).put(req); r.GetCode() != 0 {
				t.Fatalf("Put: %v", r)
			}
		}
	}
	victim := slices.Index(c.Tablets(), l.leaders[0])
	if err := c.StopTablet(victim); err != nil {
		t.Fatal(err)
	}
	after := showTable(t, ns, "d", "t")
	for pid, ep := range after.leaders {
		if ep == l.leaders[0] {
			t.Fatalf("pid %d still led by the stopped tablet", pid)
		}
	}
	// The promoted followers hold every row, and accept new Puts.
	if got := traverseAll(t, c, after, "", 9); !slices.Equal(sortedHex(got), sortedHex(want)) {
		t.Fatalf("after failover: %d rows, want %d", len(got), len(want))
	}
	for pid, req := range seedPuts(t, after, seedCells(99)) {
		if r := dial(t, after.leaders[pid]).put(req); r.GetCode() != 0 {
			t.Fatalf("Put after failover: %v", r)
		}
	}
	if n, _ := c.Count("d", "t"); n != 51 {
		t.Fatalf("Count %d", n)
	}
}

// TestLeaderMovesKeepAcknowledgedPuts moves a partition's leader round the tablets while Puts
// stream into whichever tablet leads it: every Put answered OK must be on every replica, the
// leader of the moment included. A Put whose leadership check and write straddle a move once
// replicated to the followers of the new placement, skipping the new leader.
func TestLeaderMovesKeepAcknowledgedPuts(t *testing.T) {
	ctx := testCtx(t)
	c, ns := startWithDatabase(t, Options{Tablets: 3})
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("d", "t", 1, 3)}, &nspb.GeneralResponse{})
	l := showTable(t, ns, "d", "t")

	stop := make(chan struct{})
	acked := make(chan int)
	go func() {
		n := 0
		defer func() { acked <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req := seedPuts(t, l, seedCells(i))[0]
			leader, err := c.Leader("d", "t", 0)
			if err != nil {
				t.Error(err)
				return
			}
			resp, rerr := c.tablets[leader].put(ctx, req)
			if rerr != nil {
				t.Errorf("put %d: %v", i, rerr)
				return
			}
			switch resp.GetCode() {
			case codeOK:
				n++
			case codeTableIsFollower: // the leader moved since it was looked up
			default:
				t.Errorf("put %d: %d %s", i, resp.GetCode(), resp.GetMsg())
				return
			}
		}
	}()
	for range 400 {
		leader, err := c.Leader("d", "t", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.MoveLeader("d", "t", 0, (leader+1)%3); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond)
	}
	close(stop)
	n := <-acked
	if n == 0 {
		t.Fatal("no Put was acknowledged")
	}
	for i, tb := range c.tablets {
		p := tb.partition(l.tid, 0)
		p.mu.RLock()
		held := len(p.rows)
		p.mu.RUnlock()
		if held != n {
			t.Errorf("tablet %d holds %d rows, %d Puts were acknowledged", i, held, n)
		}
	}
}
