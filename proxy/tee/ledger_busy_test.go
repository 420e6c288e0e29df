package tee

import (
	"context"
	"testing"
	"time"
)

// The rows bound never evicts a batch an attempt is still writing: its retry would find nothing,
// not wait, and write every row again while the first attempt's Puts may still land.
func TestLedgerRowsBoundKeepsBatchesBeingWritten(t *testing.T) {
	l := newLedger(1000)
	l.maxRows = 100
	busyKey := producerPartition{producerID: 1}
	if _, _, ok := l.tryAcquire(busyKey, 0, 40); !ok { // its Puts are out (the client's deadline passed)
		t.Fatal("first attempt")
	}
	for id := range int64(2) { // other producers' batches take the ledger past 100 rows
		_, release := acquireT(t, l, producerPartition{producerID: 10 + id}, 0, 40)
		release(make([]bool, 40))
	}
	if _, release, ok := l.tryAcquire(busyKey, 0, 40); ok {
		release(batchDone{})
		t.Fatal("a retry of a batch whose first attempt is still writing was let through (all rows to write again): the rows bound evicted the busy batch")
	}
}

// The per-producer-partition bound (five batches) does not forget a batch an attempt is still
// writing: a retry waiting for that attempt found a fresh batch and wrote every row again
// although the first attempt stored them.
func TestLedgerFiveBatchBoundKeepsBusyBatch(t *testing.T) {
	l := newLedger(1000)
	k := producerPartition{producerID: 1}
	_, releaseA, ok := l.tryAcquire(k, 0, 3) // first attempt at seq 0: Puts out
	if !ok {
		t.Fatal("first attempt")
	}
	type res struct {
		todo batchTodo
		err  error
	}
	got := make(chan res, 1)
	go func() { // the producer's retry of seq 0 waits for it
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		todo, release, err := l.acquire(ctx, k, 0, 3)
		if err == nil {
			release(batchDone{})
		}
		got <- res{todo, err}
	}()
	time.Sleep(50 * time.Millisecond)
	// Later batches of the same producer partition arrive meanwhile (max.in.flight 5).
	for seq := int32(3); seq <= 15; seq += 3 {
		_, release := acquireT(t, l, k, seq, 3)
		release([]bool{true, true, true})
	}
	releaseA(batchDone{stored: []bool{true, true, true}}) // the first attempt stored every row
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, need := range r.todo.rows {
		if need {
			t.Fatalf("retry must write row %d again although the first attempt stored it (busy batch evicted by the five-batch bound)", i)
		}
	}
}

// A retry waiting for an attempt still writing keeps the entry from eviction until it has
// looked again: the entry, skipped while busy, is at the back of the LRU when the attempt ends,
// and a batch of another producer arriving before the waiter re-tried evicted it, so the retry
// wrote every row again.
func TestLedgerWaiterKeepsItsEntryAfterRelease(t *testing.T) {
	lost := 0
	const runs = 200
	for run := 0; run < runs; run++ {
		l := newLedger(1)
		a := producerPartition{producerID: 1}
		_, releaseA, ok := l.tryAcquire(a, 0, 3)
		if !ok {
			t.Fatal("first attempt")
		}
		got := make(chan batchTodo, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			todo, release, err := l.acquire(ctx, a, 0, 3)
			if err != nil {
				panic(err)
			}
			release(batchDone{})
			got <- todo
		}()
		time.Sleep(time.Millisecond)
		releaseA(batchDone{stored: []bool{true, true, true}})
		// Another producer's batch arrives at once (the ledger is full).
		if _, release, ok := l.tryAcquire(producerPartition{producerID: 2}, 0, 3); ok {
			release(batchDone{})
		}
		todo := <-got
		for _, need := range todo.rows {
			if need {
				lost++
				break
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d retries waiting for an attempt wrote its stored rows again (entry evicted between the attempt's release and the retry's re-try)", lost, runs)
	}
}
