package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// phaseResult is what one producer phase measured.
type phaseResult struct {
	records   int
	bytes     int64
	elapsed   time.Duration
	latencies []time.Duration // per record: Produce call → acknowledgement
	cpu       time.Duration   // proxy CPU during the phase (0 for direct)
}

// loader produces generated records to one topic through one client.
type loader struct {
	cl    *kgo.Client
	topic string
	gen   harness.Generator
	next  int // index of the next record value, so values never repeat within a run
}

// produce sends up to n records, calling pace before each to let a caller hold the offered rate,
// stops issuing at stopAt (if not zero), and waits for every acknowledgement. It fails on the first
// produce error.
func (l *loader) produce(ctx context.Context, n int, pace func(i int), stopAt time.Time) (phaseResult, error) {
	lat := make([]time.Duration, n)
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
		bytes    int64
	)
	start := time.Now()
	issued := 0
	for i := 0; i < n; i++ {
		if pace != nil {
			pace(i)
		}
		// Checking the clock every 64 records is plenty at tens of thousands of records per second.
		if ctx.Err() != nil || (!stopAt.IsZero() && i%64 == 0 && time.Now().After(stopAt)) {
			break
		}
		issued++
		v := l.gen.Value(l.next)
		l.next++
		bytes += int64(len(v))
		wg.Add(1)
		sent := time.Now()
		idx := i
		l.cl.Produce(ctx, &kgo.Record{Topic: l.topic, Value: v}, func(_ *kgo.Record, err error) {
			lat[idx] = time.Since(sent)
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return phaseResult{}, fmt.Errorf("produce to %s: %w", l.topic, *p)
	}
	if err := ctx.Err(); err != nil {
		return phaseResult{}, fmt.Errorf("produce to %s: %w", l.topic, err)
	}
	return phaseResult{records: issued, bytes: bytes, elapsed: elapsed, latencies: lat[:issued]}, nil
}

// pacer returns a pace function that holds the offered load at rate records per second by
// sleeping until record i is due (absolute schedule, so sleeps that overshoot do not drift).
func pacer(rate int) func(int) {
	var start time.Time
	interval := time.Second / time.Duration(rate)
	return func(i int) {
		if i == 0 {
			start = time.Now()
			return
		}
		due := start.Add(time.Duration(i) * interval)
		// Sleeping below ~1ms is unreliable; let records due within the next millisecond go out.
		if d := time.Until(due); d > time.Millisecond {
			time.Sleep(d)
		}
	}
}

// percentile returns the q-quantile (0..1) of ds by nearest rank.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}
