package proxy

import "context"

// worker runs a session's hook jobs of one kind (Begin or Finish) on one long-lived goroutine,
// started on first use and ended with the session's context. A goroutine per request cost its
// start-up and stack growth on every intercepted request; this one keeps its grown stack.
//
// The session submits a job only when the previous one of the same kind has come back to the
// loop (hookBusy, finBusy), so at most one job is queued and submit never blocks the loop.
type worker[T any] struct {
	jobs chan T
}

// submit queues v for run, starting the goroutine on first use. It runs on the event loop.
func (w *worker[T]) submit(ctx context.Context, v T, run func(T)) {
	if w.jobs == nil {
		w.jobs = make(chan T, 1)
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
