package openmldb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// refusedAddr is a loopback address nothing listens on: a dial to it fails at once.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A failed dial is observed once (Options.OnRPC, the rpc_errors metric), however many calls
// were queued on the connection while it was being dialed.
func TestFailedDialIsObservedOnce(t *testing.T) {
	p := newRPCPool(nil, 5*time.Second, slog.New(slog.DiscardHandler))
	defer p.close()
	p.beforeDial = func() { time.Sleep(100 * time.Millisecond) } // the calls queue meanwhile
	var mu sync.Mutex
	var seen []error
	p.observe = func(_ string, _ time.Duration, err error) { mu.Lock(); seen = append(seen, err); mu.Unlock() }
	addr := refusedAddr(t)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		p.goCall(context.Background(), addr, NameServerService, "ShowTablet", &nspb.ShowTabletRequest{}, func(_ []byte, err error) {
			defer wg.Done()
			var ce *ConnError
			if !errors.As(err, &ce) {
				t.Errorf("call on a failed dial: %v, want a ConnError", err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("OnRPC saw %d errors for one failed dial with 3 calls queued: %v", len(seen), seen)
	}
}

// A call whose time runs out while its connection is still being dialed fails as a connection
// failure (callers such as the nameserver lookup then try another endpoint), not as a call that
// reached the server and timed out.
func TestCallOutlivedByItsDialIsAConnError(t *testing.T) {
	p := newRPCPool(nil, 100*time.Millisecond, slog.New(slog.DiscardHandler))
	defer p.close()
	p.beforeDial = func() { time.Sleep(400 * time.Millisecond) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = p.call(context.Background(), ln.Addr().String(), NameServerService, "ShowTablet", &nspb.ShowTabletRequest{}, &nspb.ShowTabletResponse{})
	var ce *ConnError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCallTimeout) {
		t.Fatalf("call outlived by its dial: %v, want a ConnError wrapping ErrCallTimeout", err)
	}
}

// A call cancelled while its connection is being dialed is never sent: its caller was told it
// failed, so a Put sent later could be stored after all.
func TestCallCancelledWhileDialingIsNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := newRPCPool(nil, 5*time.Second, slog.New(slog.DiscardHandler))
	defer p.close()
	release := make(chan struct{})
	p.beforeDial = func() { <-release }
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	p.goCall(ctx, ln.Addr().String(), TabletService, "Put", &nspb.ShowTabletRequest{}, func(_ []byte, err error) { ended <- err })
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// A call made after it, still waiting, goes out once the dial completes.
	sent := make(chan error, 1)
	p.goCall(context.Background(), ln.Addr().String(), TabletService, "Put", &nspb.ShowTabletRequest{}, func(_ []byte, err error) { sent <- err })
	close(release)
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_ = srv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	got, _ := io.ReadAll(srv)
	frame, err := AppendRequestFrame(nil, TabletService, "Put", 2, nil, &nspb.ShowTabletRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(frame) {
		t.Fatalf("the tablet got %d bytes, want only the waiting call's frame (%d bytes): the cancelled call's was sent too", len(got), len(frame))
	}
}
