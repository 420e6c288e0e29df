package tee

import "testing"

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
