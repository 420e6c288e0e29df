package openmldbtest

import (
	"bufio"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// A Put the tablet stored before StallPuts is answered at once, as brpc answers each request when
// its handler returns. The reading goroutine decides to serve a request inline before the Put
// looks at the stall; a stall that begins in between once made the Put sleep on that goroutine,
// holding back the answers of the Puts served before it in the same read for the whole stall.
func TestStallDoesNotWithholdAnswersOfStoredPuts(t *testing.T) {
	c, _ := startWithDatabase(t, Options{Tablets: 1})
	var l tableLayout
	burstOf := func(trial int) ([]byte, []byte) {
		req := seedPuts(t, l, seedCells(1000+trial))[0]
		payload, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		// 16 pipelined Put frames per write.
		var burst []byte
		for i := 0; i < 16; i++ {
			meta := &brpcpb.RpcMeta{Request: &brpcpb.RpcRequestMeta{ServiceName: proto.String(tabletServerService),
				MethodName: proto.String("Put")}, CorrelationId: proto.Int64(int64(i + 1))}
			if burst, err = appendFrame(burst, meta, payload); err != nil {
				t.Fatal(err)
			}
		}
		return req.GetValue(), burst
	}
	storedOf := func(name string, row []byte) int64 {
		rows, err := c.Rows("d", name)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for _, r := range rows {
			if string(r) == string(row) {
				n++
			}
		}
		return n
	}
	const stall = 3 * time.Second
	for trial := 0; trial < 12; trial++ { // without the fix, one of the first few fails
		name := "t" + strconv.Itoa(trial) // a table per trial: Puts released late by one do not count in the next
		ns := dial(t, c.Nameserver())
		ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("d", name, 1, 1)}, &nspb.GeneralResponse{})
		l = showTable(t, ns, "d", name)
		row, burst := burstOf(trial)
		nc, err := net.Dial("tcp", l.leaders[0])
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		var answered atomic.Int64
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			br := bufio.NewReader(nc)
			for {
				f, err := readFrame(br, make([]byte, 12))
				if err != nil {
					return
				}
				r := &apipb.PutResponse{}
				if proto.Unmarshal(f.payload, r) == nil && f.meta.GetResponse().GetErrorCode() == 0 && r.GetCode() == 0 {
					answered.Add(1)
				}
			}
		}()
		var stopW atomic.Bool
		wDone := make(chan struct{})
		go func() {
			defer close(wDone)
			for !stopW.Load() {
				if _, err := nc.Write(burst); err != nil {
					return
				}
			}
		}()
		time.Sleep(15 * time.Millisecond)
		c.StallPuts(stall)
		stallStart := time.Now()
		stopW.Store(true)
		time.Sleep(300 * time.Millisecond) // every Put not stalled is stored by now
		stored := storedOf(name, row)
		time.Sleep(200 * time.Millisecond) // and answered
		got := answered.Load()
		inStall := time.Since(stallStart) < stall-500*time.Millisecond
		c.StallPuts(0)
		<-wDone
		nc.Close()
		<-readDone
		if !inStall {
			t.Logf("trial %d inconclusive: the stall was nearly over when counted", trial)
			continue
		}
		if stored > got {
			t.Fatalf("trial %d: %d Puts of this connection stored, only %d answered (the answers are held until the stall ends)",
				trial, stored, got)
		}
	}
}

// Concurrent Puts of one partition are stored in one order on every replica, as OpenMLDB's
// followers replaying the leader's binlog keep it: otherwise, after a leader move or a failover,
// the newest of a key's equal-timestamp rows, a Scan's order and Cluster.Rows would change.
func TestFollowersStoreTheLeadersOrder(t *testing.T) {
	ctx := testCtx(t)
	c, ns := startWithDatabase(t, Options{Tablets: 2})
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("d", "t", 1, 1)}, &nspb.GeneralResponse{})
	// Standalone gives one replica on tablet 0: add tablet 1 as a follower.
	if err := c.MoveLeader("d", "t", 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.MoveLeader("d", "t", 0, 0); err != nil {
		t.Fatal(err)
	}
	l := showTable(t, ns, "d", "t")
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				req := seedPuts(t, l, seedCells(w*per+i))[0]
				if resp, rerr := c.tablets[0].put(ctx, req); rerr != nil || resp.GetCode() != 0 {
					t.Errorf("put: %v %v", rerr, resp)
					return
				}
			}
		}()
	}
	wg.Wait()
	rows := func(ti int) [][]byte {
		p := c.tablets[ti].partition(l.tid, 0)
		p.mu.RLock()
		defer p.mu.RUnlock()
		return slices.Clone(p.rows)
	}
	lead, fol := rows(0), rows(1)
	if len(lead) != len(fol) {
		t.Fatalf("leader %d rows, follower %d", len(lead), len(fol))
	}
	diff := 0
	for i := range lead {
		if string(lead[i]) != string(fol[i]) {
			diff++
		}
	}
	if diff > 0 {
		t.Fatalf("follower holds %d of %d rows at another position than the leader", diff, len(lead))
	}
}
