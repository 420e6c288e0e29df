package openmldb

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

// errNoLateAnswer is the outcome of an expired Put whose answer did not come within a further
// RPC timeout: it is sent again, as a Put that timed out always was before (it may then be
// stored twice).
var errNoLateAnswer = fmt.Errorf("%w, and no answer came after it either", ErrCallTimeout)

// putAttempt is what outlives one Put's expiry: the lane fallback and tie-gate place it holds
// until it is really over, and its answer after all. A Put that expired on the client's RPC
// timeout is decided by that answer instead of being sent again while the first may still be
// applied (which stored rows twice). The expiry's callback waits for it (await), at most one more
// RPC timeout and no longer than the write's context; the call's late delivers it (late),
// possibly before the callback has begun to wait.
//
// A Write's first attempts live in one arena (Puts that never expire, nearly all, cost no
// allocation of their own); the rare path's state is allocated when it is needed.
type putAttempt struct {
	c        *Client
	fallback *laneState // the lane's shared-connection fallback, released when the Put is over
	tie      *tieEntry  // the tie-gate place, left when the Put is over

	mu      sync.Mutex
	issued  bool // a Put was sent with this attempt: a retry takes a fresh one
	decided bool
	w       *lateWait
}

// lateWait is an expired Put's outcome in waiting.
type lateWait struct {
	arrived bool // the answer came before the callback waited: body and err hold it
	body    []byte
	err     error
	then    func(body []byte, err error) // the waiting callback's continuation
	timer   *time.Timer
	stopCtx func() bool
}

// late implements lateHandler: the Put is over after all.
func (a *putAttempt) late(body []byte, err error) {
	if a.fallback != nil {
		a.c.unfallback(a.fallback)
	}
	if a.tie != nil {
		a.c.leaveTie(a.tie)
	}
	a.mu.Lock()
	if a.decided {
		a.mu.Unlock()
		return
	}
	if a.w == nil || a.w.then == nil {
		// body is the reader's buffer
		a.w = &lateWait{arrived: true, body: bytes.Clone(body), err: err}
		a.mu.Unlock()
		return
	}
	then := a.decide()
	a.mu.Unlock()
	then(body, err)
}

// await runs then with the Put's outcome: the answer that came already or comes later, or an
// *expiredError wrapping errNoLateAnswer after bound, or ctx's error when ctx ends first.
func (a *putAttempt) await(ctx context.Context, bound time.Duration, then func(body []byte, err error)) {
	a.mu.Lock()
	if a.w != nil && a.w.arrived {
		a.decided = true
		body, err := a.w.body, a.w.err
		a.mu.Unlock()
		then(body, err)
		return
	}
	a.w = &lateWait{then: then}
	a.w.timer = time.AfterFunc(bound, func() { a.giveUp(errNoLateAnswer) })
	a.w.stopCtx = context.AfterFunc(ctx, func() { a.giveUp(ctx.Err()) })
	a.mu.Unlock()
}

func (a *putAttempt) giveUp(err error) {
	a.mu.Lock()
	if a.decided || a.w == nil || a.w.then == nil {
		a.mu.Unlock()
		return
	}
	then := a.decide()
	a.mu.Unlock()
	// Still an expiry: the Put may yet be applied, so the tie gate keeps its place until its
	// late (or its own bound), as for any expired Put.
	then(nil, &expiredError{err})
}

// decide marks a decided and returns the continuation; a.mu is held and a.w.then set.
func (a *putAttempt) decide() func(body []byte, err error) {
	a.decided = true
	w := a.w
	a.w = nil
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.stopCtx != nil {
		w.stopCtx()
	}
	return w.then
}
