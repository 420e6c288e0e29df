package proxy

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// nextFetch reads request frames from r until a Fetch, and returns its correlation id (false
// when the connection ends).
func nextFetch(r *bufio.Reader) ([]byte, bool) {
	for {
		var p [4]byte
		if _, err := io.ReadFull(r, p[:]); err != nil {
			return nil, false
		}
		req := make([]byte, binary.BigEndian.Uint32(p[:]))
		if _, err := io.ReadFull(r, req); err != nil || len(req) < 8 {
			return nil, false
		}
		if key := int16(binary.BigEndian.Uint16(req)); key == 1 {
			return req[4:8], true
		}
	}
}

// hugeFetchBroker answers every Fetch request with a response frame of size bytes (its
// correlation id, then zeros), written in 64 KiB pieces as the proxy reads them, and nothing
// else (the proxy's own Metadata requests go unanswered). It returns its address and what it
// has written so far of all responses.
func hugeFetchBroker(t testing.TB, size int) (string, *atomic.Int64) {
	t.Helper()
	var written atomic.Int64
	addr := serveConns(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		chunk := make([]byte, 64<<10)
		for {
			corr, ok := nextFetch(r)
			if !ok {
				return
			}
			head := binary.BigEndian.AppendUint32(nil, uint32(size))
			head = append(head, corr...)
			head = append(head, 0) // empty tagged fields of a flexible header
			if _, err := c.Write(head); err != nil {
				return
			}
			written.Add(int64(len(head)))
			for left := size - 5; left > 0; {
				n, err := c.Write(chunk[:min(left, len(chunk))])
				written.Add(int64(n))
				left -= n
				if err != nil {
					return
				}
			}
		}
	})
	return addr, &written
}

// A broker response larger than passMinResponse is passed on to the client as it arrives, not
// collected whole first: with a client that reads nothing, the proxy stops reading the broker
// once limits.max_outbound_bytes_per_connection is waiting, so the broker gets only that (and
// the kernel's socket buffers) out of a 256 MiB Fetch response. Before, the proxy read the
// whole response into the broker connection's buffer. Then the client reads it: it arrives
// whole, and the answer to the request pipelined after it (answered by the proxy itself)
// comes after it.
func TestLargeResponsesArePassedOnAsTheyArrive(t *testing.T) {
	const size = 256 << 20
	broker, written := hugeFetchBroker(t, size)
	p, _ := startProxyOpts(t, []string{broker}, 1, Options{Logger: quietLogger(),
		Limits: Limits{MaxOutboundPerConnection: 1 << 20}})
	r := dialRaw(t, p.Addr())
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	local := kmsg.NewPtrApiVersionsRequest()
	local.Version = 30 // beyond what the proxy parses: it answers itself
	r.send(reqFrame(fetch, 1), reqFrame(local, 2))

	// The broker writes until the proxy stops reading (or all of it, if it never does).
	var last int64 = -1
	for w := written.Load(); w != last && w < size; w = written.Load() {
		last = w
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("broker wrote %d MiB of a %d MiB response to a client that reads nothing", last>>20, size>>20)
	if last > 64<<20 {
		t.Fatalf("the proxy took %d MiB of a response its client does not read "+
			"(max_outbound_bytes_per_connection 1 MiB): large responses are collected whole", last>>20)
	}

	_ = r.c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReaderSize(r.c, 1<<20)
	var head [9]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		t.Fatal(err)
	}
	if n, corr := binary.BigEndian.Uint32(head[:]), int32(binary.BigEndian.Uint32(head[4:])); n != size || corr != 1 {
		t.Fatalf("first response: size %d, correlation id %d; want %d, 1", n, corr, size)
	}
	if n, err := io.CopyN(io.Discard, br, size-5); err != nil {
		t.Fatalf("first response: %d of %d bytes after its header: %v", n, size-5, err)
	}
	var next [8]byte
	if _, err := io.ReadFull(br, next[:]); err != nil {
		t.Fatalf("the answer after the passed response: %v", err)
	}
	if corr := int32(binary.BigEndian.Uint32(next[4:])); corr != 2 {
		t.Fatalf("response after the passed one: correlation id %d, want 2", corr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.InflightRequests() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still in flight after both answers", p.InflightRequests())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkLargeResponse fetches 32 MiB responses through the proxy, one at a time, reading
// each whole: the cost of passing large responses on (compare with a build that collects them).
func BenchmarkLargeResponse(b *testing.B) {
	const size = 32 << 20
	broker, _ := hugeFetchBroker(b, size)
	p, _ := startProxyOpts(b, []string{broker}, 1, Options{Logger: quietLogger()})
	r := dialRaw(b, p.Addr())
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	br := bufio.NewReaderSize(r.c, 1<<20)
	b.SetBytes(size + 4)
	b.ResetTimer()
	for i := range b.N {
		_ = r.c.SetDeadline(time.Now().Add(30 * time.Second))
		r.send(reqFrame(fetch, int32(i)))
		if _, err := io.CopyN(io.Discard, br, size+4); err != nil {
			b.Fatal(err)
		}
	}
}

// stallingFetchBroker answers a Fetch with a response frame of size bytes (correlation id, then
// zeros), but writes only its first part bytes, then waits for release before writing the rest.
// It signals on sent once the first part is out.
func stallingFetchBroker(t testing.TB, size, part int) (addr string, sent <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	sentc := make(chan struct{}, 1)
	rel := make(chan struct{})
	addr = serveConns(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			corr, ok := nextFetch(r)
			if !ok {
				return
			}
			resp := make([]byte, 4+size)
			binary.BigEndian.PutUint32(resp, uint32(size))
			copy(resp[4:8], corr) // the rest (tagged fields, body) zeros
			if _, err := c.Write(resp[:part]); err != nil {
				return
			}
			sentc <- struct{}{}
			select {
			case <-rel:
			case <-time.After(30 * time.Second):
				return
			}
			if _, err := c.Write(resp[part:]); err != nil {
				return
			}
		}
	})
	return addr, sentc, rel
}

// passingSize is the response passingFetch's broker sends: above passMinResponse.
const passingSize = 2 << 20

// passingFetch starts a proxy with limits in front of a stallingFetchBroker, sends it a Fetch
// from a raw client, and returns once the proxy is passing the first part of the response on;
// release lets the broker send the rest.
func passingFetch(t *testing.T, limits Limits) (*Proxy, *rawConn, chan<- struct{}) {
	t.Helper()
	broker, sent, release := stallingFetchBroker(t, passingSize, 256<<10)
	p, _ := startProxyOpts(t, []string{broker}, 1, Options{Logger: quietLogger(), Limits: limits})
	r := dialRaw(t, p.Addr())
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	r.send(reqFrame(fetch, 1))
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("broker got no Fetch")
	}
	time.Sleep(200 * time.Millisecond) // the proxy reads the first part and starts passing
	return p, r, release
}

// An answer the proxy writes itself, completed while a response is being passed on, waits for
// the passed response's last byte instead of landing inside it.
func TestLocalAnswerWaitsForThePassedResponse(t *testing.T) {
	const size = passingSize
	_, r, release := passingFetch(t, Limits{})
	local := kmsg.NewPtrApiVersionsRequest()
	local.Version = 30 // beyond what the proxy parses: it answers itself
	r.send(reqFrame(local, 2))
	time.Sleep(200 * time.Millisecond) // the proxy reads and answers it
	close(release)

	_ = r.c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReaderSize(r.c, 1<<20)
	var head [8]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		t.Fatal(err)
	}
	if n, corr := binary.BigEndian.Uint32(head[:]), int32(binary.BigEndian.Uint32(head[4:])); n != size || corr != 1 {
		t.Fatalf("first response: size %d, correlation id %d; want %d, 1", n, corr, size)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	for i, b := range body {
		if b != 0 {
			t.Fatalf("passed response corrupted: byte %d after its header is %#x (another response was written into it)", i, b)
		}
	}
	if _, err := io.ReadFull(br, head[:]); err != nil {
		t.Fatalf("the answer after the passed response: %v", err)
	}
	if corr := int32(binary.BigEndian.Uint32(head[4:])); corr != 2 {
		t.Fatalf("response after the passed one: correlation id %d, want 2", corr)
	}
}

// A client closing while a response is being passed to it gives back the request's bytes
// counted against limits.max_queued_bytes, and its place in flight.
func TestClientClosingMidPassReleasesItsQueuedBytes(t *testing.T) {
	p, r, _ := passingFetch(t, Limits{MaxQueuedBytes: 1 << 20})
	_ = r.c.Close()

	deadline := time.Now().Add(5 * time.Second)
	for p.InflightRequests() != 0 || p.lim.queued.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the client closed: %d requests in flight, %d bytes still queued (want 0, 0)",
				p.InflightRequests(), p.lim.queued.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A response being passed on still counts against limits.max_inflight_per_connection.
func TestPassedResponseCountsAgainstMaxInflight(t *testing.T) {
	p, r, _ := passingFetch(t, Limits{MaxInflightPerConnection: 2})
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 4
	r.send(reqFrame(meta, 2), reqFrame(meta, 3), reqFrame(meta, 4)) // the broker answers none
	time.Sleep(300 * time.Millisecond)
	if n := p.InflightRequests(); n > 2 {
		t.Fatalf("%d requests in flight on a connection with max_inflight_per_connection 2", n)
	}
}
