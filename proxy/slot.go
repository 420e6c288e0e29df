package proxy

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// slot is the place of one expected response in a connection's response order. Slots complete
// in any order (broker responses, local answers, hook results) and are written to the client
// strictly in request order.
type slot struct {
	corr     int32
	key, ver int16
	// local: answered by the proxy; the broker sends nothing for it (the reader skips it).
	local bool
	// noResp: Produce acks=0 kept only to run a hook's Finish in order; nothing is written.
	noResp bool
	// hooked slots may still be referenced from the inflight queue after being written, so they
	// are never recycled.
	hooked bool
	done   bool
	// size is the request's bytes counted against Limits.MaxQueuedBytes until it is delivered.
	size int64
	// start is when a Produce request was read (unix ns, for okp_produce_seconds); teed marks
	// one whose hook returned a Finish.
	start       int64
	teed        bool
	out         []byte
	resp        kmsg.Response
	finish      func(context.Context, kmsg.Response) kmsg.Response
	finishAsync func(context.Context, kmsg.Response, func(kmsg.Response))
	// finStarted: finish runs on a worker; the slot is delivered once it comes back.
	finStarted bool
	// buf is the pooled request frame that finish may still read; it returns to the pool after.
	buf []byte
}

// fifo is a queue of slots.
type fifo struct {
	buf  []*slot
	head int
}

func (q *fifo) push(s *slot) { q.buf = append(q.buf, s) }

func (q *fifo) front() *slot {
	if q.head == len(q.buf) {
		return nil
	}
	return q.buf[q.head]
}

func (q *fifo) pop() *slot {
	s := q.front()
	if s == nil {
		return nil
	}
	q.buf[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.buf):
		q.buf, q.head = q.buf[:0], 0
	case q.head >= 256 && q.head*2 >= len(q.buf):
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return s
}

func (q *fifo) len() int { return len(q.buf) - q.head }

// brokerFront drops the local slots at the front (answered by the proxy: the broker sends
// nothing for them) and returns the first slot the broker's next response is for, or nil.
func (q *fifo) brokerFront() *slot {
	for s := q.front(); s != nil && s.local; s = q.front() {
		q.pop()
	}
	return q.front()
}

// hasFinish reports whether a hook's Finish (either kind) must run before the slot is delivered.
func (sl *slot) hasFinish() bool { return sl.finish != nil || sl.finishAsync != nil }
