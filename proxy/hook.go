package proxy

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Hook lets a component intercept selected API keys (the tee takes Produce=0, InitProducerId=22 and EndTxn=26).
// ApiVersions (18) cannot be intercepted: the proxy clamps it itself.
type Hook interface {
	// Intercepts reports whether requests of this key must be decoded and handed to Begin.
	Intercepts(key int16) bool
	// Begin runs for each intercepted request in the connection's request order, off the gnet
	// event loop (unless the hook is a LoopBeginner that takes it), BEFORE the request is forwarded and before any later request of the same
	// connection is forwarded (so idempotent sequence order to the broker is preserved).
	//
	// req's byte fields (Produce records among them) alias the request's buffer, which the proxy
	// reuses once the Step's Finish has returned (Begin, without a Finish): copy what must outlive
	// that.
	Begin(ctx context.Context, c ConnInfo, req kmsg.Request) Step
}

// LoopBeginner is a Hook whose Begin can often finish in microseconds without waiting. For
// such requests a Begin off the loop costs more than the work: a worker goroutine woken and the
// loop woken again to forward the result (at 2,000 small Produce requests a second, a tenth of
// the tee's CPU and 1.5 of its 14 system calls per request).
type LoopBeginner interface {
	Hook
	// BeginOnLoop is Begin run ON the event loop, with the same order, arguments and Step. It
	// must not wait for anything and should take no longer than a few tens of microseconds; when
	// it cannot promise that for req it returns ok false, having done nothing, and the proxy
	// calls Begin off the loop instead.
	BeginOnLoop(ctx context.Context, c ConnInfo, req kmsg.Request) (step Step, ok bool)
}

// Step says what to do with an intercepted request.
//
// With Forward and Local both nil the client's original bytes are forwarded. For Produce with
// acks=0 the client expects no response: a Local answer is dropped and Finish gets a nil response.
type Step struct {
	// Forward, if non-nil, is forwarded (re-encoded with the client's correlation id and client id,
	// at Forward's version, which should be the request's) instead of the client's bytes.
	Forward kmsg.Request
	// Local, if non-nil, is answered to the client and nothing is forwarded; Finish is not run.
	Local kmsg.Response
	// Finish, if non-nil, runs after the broker's response arrived (resp nil for Produce acks=0,
	// where nothing is sent back), off the event loop; it returns the response to send (nil for
	// acks=0). It may block (it waits for OpenMLDB writes). A connection's Finishes start as
	// their requests are answered (an acks=0 request's once it is forwarded), oldest first, and
	// up to 8 run at the same time, so Finish must be safe to call concurrently and must not
	// assume an earlier request's Finish has ended; responses still leave in request order, later
	// ones waiting behind an unfinished one. The response it gets already carries the proxy's
	// broker addresses.
	Finish func(ctx context.Context, resp kmsg.Response) kmsg.Response
	// FinishAsync is Finish for work that completes through callbacks: it runs ON the event
	// loop, so it must return at once (starting its work elsewhere, never waiting), and it calls
	// done exactly once, from any goroutine, possibly before returning, with the response to send
	// (nil for acks=0). Ordering, concurrency and the lifetime of the request's bytes (until
	// done) are as for Finish. It saves the two goroutine hand-offs of a blocking Finish. Set at
	// most one of Finish and FinishAsync.
	FinishAsync func(ctx context.Context, resp kmsg.Response, done func(kmsg.Response))
}

// ConnInfo identifies the client connection of an intercepted request.
type ConnInfo struct {
	// RemoteAddr is the client's address.
	RemoteAddr string
	// ClientID is the client id of the request ("" when null).
	ClientID string
	// NodeID is the upstream broker's node id, or -1 for a connection to the bootstrap listener
	// (which goes to whichever bootstrap broker answered).
	NodeID int32
	// Serial runs work of this connection in request order (see Serial.Run).
	Serial *Serial
	// Loop is the connection's event loop, for connections of the hook's own that should be
	// served there (nil outside a running proxy).
	Loop *Loop
	// Keep counts n bytes against Limits.MaxQueuedBytes until release is called: for work a
	// hook goes on with after the request was answered, such as an OpenMLDB write that outlives
	// its request's timeout, which would otherwise escape the bound. It never blocks or fails;
	// past the bound the proxy stops reading clients until enough is released. release may be
	// called more than once. Nil outside a running proxy.
	Keep func(n int64) (release func())
}

// Serial keeps a connection's hook work in the order of its requests when some of it must leave
// the event loop: a FinishAsync that issues writes on the loop for a small request and on a
// goroutine for a large one would otherwise let a later small request's writes overtake an
// earlier large one's (the tee must apply a partition's rows in offset order).
type Serial struct {
	mu      sync.Mutex
	queue   []func(onLoop bool)
	running bool // a goroutine is running the queue
}

// Run runs fn after every fn given before it on this connection has returned. With inline set
// and nothing queued, fn runs at once on the caller's goroutine; otherwise it runs on a goroutine
// of the connection's, in order. fn is told which: onLoop true when it runs inline. Call Run
// from the connection's event loop (FinishAsync runs there); fn may block only when off the loop.
func (q *Serial) Run(inline bool, fn func(onLoop bool)) {
	q.mu.Lock()
	if inline && !q.running {
		q.mu.Unlock()
		fn(true)
		return
	}
	q.queue = append(q.queue, fn)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.drain()
	}
}

// drain runs queued work until none is left.
func (q *Serial) drain() {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		fn := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		fn(false)
	}
}
