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
type putAttempt struct {
	c        *Client
	fallback *laneState // the lane's shared-connection fallback, released when the Put is over
	tie      *tieEntry  // the tie-gate place, left when the Put is over

	mu      sync.Mutex
	decided bool
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
	if a.then == nil {
		a.arrived, a.body, a.err = true, bytes.Clone(body), err // body is the reader's buffer
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
	if a.arrived {
		a.decided = true
		body, err := a.body, a.err
		a.mu.Unlock()
		then(body, err)
		return
	}
	a.then = then
	a.timer = time.AfterFunc(bound, func() { a.giveUp(errNoLateAnswer) })
	a.stopCtx = context.AfterFunc(ctx, func() { a.giveUp(ctx.Err()) })
	a.mu.Unlock()
}

func (a *putAttempt) giveUp(err error) {
	a.mu.Lock()
	if a.decided || a.then == nil {
		a.mu.Unlock()
		return
	}
	then := a.decide()
	a.mu.Unlock()
	// Still an expiry: the Put may yet be applied, so the tie gate keeps its place until its
	// late (or its own bound), as for any expired Put.
	then(nil, &expiredError{err})
}

// decide marks a decided and returns the continuation; a.mu is held.
func (a *putAttempt) decide() func(body []byte, err error) {
	a.decided = true
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.stopCtx != nil {
		a.stopCtx()
	}
	then := a.then
	a.then = nil
	return then
}
