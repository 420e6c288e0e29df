package openmldb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// zkRelay forwards one ZooKeeper client's connection. Once hold is armed, the first request
// frame containing the armed substring, and every non-ping request after it, is held back
// (pings pass, so the session stays up) until release: a client whose catalog load is stuck
// half-way, having read some znodes already.
type zkRelay struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	match   []byte
	holding bool
	held    [][]byte
	up      net.Conn // towards ZooKeeper
	heldCh  chan struct{}
}

func newZKRelay(t *testing.T, target string) *zkRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &zkRelay{ln: ln, target: target, heldCh: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *zkRelay) serve(c net.Conn) {
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.up = up
	r.mu.Unlock()
	go func() { _, _ = io.Copy(c, up); c.Close() }()
	defer up.Close()
	first := true
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		frame := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
		copy(frame, hdr[:])
		if _, err := io.ReadFull(c, frame[4:]); err != nil {
			return
		}
		ping := !first && len(frame) >= 8 && int32(binary.BigEndian.Uint32(frame[4:8])) == -2
		r.mu.Lock()
		if !first && !ping && !r.holding && r.match != nil && bytes.Contains(frame, r.match) {
			r.holding = true
			close(r.heldCh)
		}
		if r.holding && !ping {
			r.held = append(r.held, frame)
			r.mu.Unlock()
			first = false
			continue
		}
		_, err := up.Write(frame)
		r.mu.Unlock()
		if err != nil {
			return
		}
		first = false
	}
}

func (r *zkRelay) hold(match string) {
	r.mu.Lock()
	r.match = []byte(match)
	r.mu.Unlock()
}

func (r *zkRelay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.held {
		_, _ = r.up.Write(f)
	}
	r.held, r.holding, r.match = nil, false, nil
}

// A Refresh that starts after a table was created must see it. Since 1b3bc56 a Refresh joins
// the catalog load a timed-out refresh left running, even when that load read the table list
// before the table existed: Refresh (and CreateTable, which refreshes) returns success with a
// catalog older than the caller needs.
func TestRefreshAfterChangeDoesNotReturnOlderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := startEnv(t, ctx, openmldbtest.Options{Tablets: 2}, 0)
	if err := e.client.CreateDatabase(ctx, "rv", true); err != nil {
		t.Fatal(err)
	}
	relay := newZKRelay(t, e.zk.Addr)
	c2, err := openmldb.Open(ctx, openmldb.Options{ZKCluster: relay.ln.Addr().String(), ZKPath: e.cluster.ZKPath(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	time.Sleep(time.Second) // c2's watch installs its watches (leader/ too) before the hold

	// A refresh whose context ends while its load has read the tables and waits for leader/.
	relay.hold("/leader")
	rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if err := c2.Refresh(rctx); err == nil {
		t.Fatal("refresh succeeded with its load held")
	}
	rcancel()
	select {
	case <-relay.heldCh:
	case <-time.After(5 * time.Second):
		t.Fatal("the load never asked for leader/")
	}

	// The table is created afterwards (through the other client, straight to ZooKeeper).
	createTestTable(t, ctx, e.client, "rv", "late", 1, 1)

	// A refresh that starts now, after the table exists.
	done := make(chan error, 1)
	go func() { done <- c2.Refresh(ctx) }()
	time.Sleep(200 * time.Millisecond) // let it wait on the held load
	relay.release()
	if err := <-done; err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := c2.Table("rv", "late"); err != nil {
		t.Fatalf("refresh started after CreateTable returned success, but: %v", err)
	}
}
