package openmldb

import (
	"bytes"
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
	queued := make(chan struct{})
	p.beforeDial = func() { <-queued } // the dial fails once all three calls are queued on it
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
	close(queued)
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
	release := make(chan struct{})
	defer close(release)
	p.beforeDial = func() { <-release } // the dial completes only after the call has ended
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
	// Frames leave in call order: the first one the tablet gets must be the waiting call's
	// (correlation id 2), not the cancelled one's (1).
	want, err := AppendRequestFrame(nil, TabletService, "Put", 2, nil, &nspb.ShowTabletRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(srv, got); err != nil {
		t.Fatalf("the waiting call's frame did not arrive: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the first frame the tablet got is not the waiting call's: the cancelled call was sent")
	}
}
