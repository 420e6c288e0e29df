package proxy

import "context"

// worker runs a session's hook jobs of one kind (Begin or Finish) on long-lived goroutines,
// started on first use and ended with the session's context. A goroutine per request cost its
// start-up and stack growth on every intercepted request; these keep their grown stacks.
//
// Begins run one at a time (the session submits the next when the previous came back, so the
// request order to the broker holds); Finishes up to maxFinishes at once. The session passes
// how many jobs are out including the new one, and never more than maxFinishes, so the queue
// always has room and submit never blocks the loop.
type worker[T any] struct {
	jobs    chan T
	started int
}

// submit queues v for run, with busy jobs out counting v; it starts a goroutine when every
// started one may be busy. It runs on the event loop.
func (w *worker[T]) submit(ctx context.Context, v T, busy int, run func(T)) {
	if w.jobs == nil {
		w.jobs = make(chan T, maxFinishes)
	}
	if w.started < busy {
		w.started++
		go workLoop(ctx, w.jobs, run)
	}
	w.jobs <- v
}

// workLoop runs jobs until ctx ends; a job still queued then is dropped with the session.
func workLoop[T any](ctx context.Context, jobs <-chan T, run func(T)) {
	for {
		select {
		case v := <-jobs:
			run(v)
		case <-ctx.Done():
			return
		}
	}
}
