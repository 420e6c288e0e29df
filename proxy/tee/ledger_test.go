package tee

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// acquireT starts an attempt at a batch of whole-row writes: the rows to write, and a release
// taking the rows stored.
func acquireT(t *testing.T, l *ledger, k producerPartition, seq int32, n int) ([]bool, func([]bool)) {
	t.Helper()
	todo, release := acquirePartsT(t, l, k, seq, n)
	return todo.rows, func(stored []bool) { release(batchDone{stored: stored}) }
}

func acquirePartsT(t *testing.T, l *ledger, k producerPartition, seq int32, n int) (batchTodo, func(batchDone)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	todo, release, err := l.acquire(ctx, k, seq, n)
	if err != nil {
		t.Fatal(err)
	}
	return todo, release
}

// A row stored in some of its partitions is still to be written, in the others only; the
// partitions stored accumulate over attempts and are forgotten once the row is whole.
func TestLedgerRemembersPartitionsOfPartlyStoredRows(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 7, epoch: 1, topic: "t", partition: 3}
	todo, release := acquirePartsT(t, l, k, 100, 3)
	if todo.parts != nil {
		t.Fatalf("new batch has stored partitions %v", todo.parts)
	}
	release(batchDone{stored: []bool{true, false, false}, parts: map[int][]uint32{1: {4}}})
	todo, release = acquirePartsT(t, l, k, 100, 3)
	if !reflect.DeepEqual(todo.rows, []bool{false, true, true}) || !reflect.DeepEqual(todo.parts, map[int][]uint32{1: {4}}) {
		t.Fatalf("retry todo %v parts %v, want rows 1 and 2, row 1 stored in partition 4", todo.rows, todo.parts)
	}
	release(batchDone{stored: []bool{false, false, true}, parts: map[int][]uint32{1: {6}}})
	todo, release = acquirePartsT(t, l, k, 100, 3)
	if !reflect.DeepEqual(todo.rows, []bool{false, true, false}) || !reflect.DeepEqual(todo.parts, map[int][]uint32{1: {4, 6}}) {
		t.Fatalf("second retry todo %v parts %v, want row 1 stored in partitions 4 and 6", todo.rows, todo.parts)
	}
	// The caller's copy is its own: changing it does not change the ledger.
	todo.parts[1][0] = 99
	release(batchDone{})
	todo, release = acquirePartsT(t, l, k, 100, 3)
	if !reflect.DeepEqual(todo.parts, map[int][]uint32{1: {4, 6}}) {
		t.Fatalf("parts %v after the caller changed its copy, want row 1 stored in partitions 4 and 6", todo.parts)
	}
	release(batchDone{stored: []bool{false, true, false}})
	todo, release = acquirePartsT(t, l, k, 100, 3)
	release(batchDone{})
	if !reflect.DeepEqual(todo.rows, []bool{false, false, false}) || todo.parts != nil {
		t.Fatalf("after the row is whole todo %v parts %v, want nothing", todo.rows, todo.parts)
	}
}

func TestLedgerRetryWritesOnlyMissingRows(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 7, epoch: 1, topic: "t", partition: 3}
	todo, release := acquireT(t, l, k, 100, 3)
	if !reflect.DeepEqual(todo, []bool{true, true, true}) {
		t.Fatalf("new batch todo = %v", todo)
	}
	release([]bool{true, false, true})
	todo, release = acquireT(t, l, k, 100, 3)
	if !reflect.DeepEqual(todo, []bool{false, true, false}) {
		t.Fatalf("retry todo = %v, want only row 1", todo)
	}
	release([]bool{false, true, false})
	todo, release = acquireT(t, l, k, 100, 3)
	release(nil)
	if !reflect.DeepEqual(todo, []bool{false, false, false}) {
		t.Fatalf("after second attempt todo = %v, want none", todo)
	}
	// A different epoch is a different producer session: nothing is known about it.
	k2 := k
	k2.epoch = 2
	if todo, _ := acquireT(t, l, k2, 100, 3); !reflect.DeepEqual(todo, []bool{true, true, true}) {
		t.Fatalf("other epoch todo = %v", todo)
	}
}

func TestLedgerRetryWaitsForAttemptStillWriting(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 1, topic: "t"}
	_, release := acquireT(t, l, k, 0, 2)
	// The retry arrives while the first attempt's Puts are still out: it must not start.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := l.acquire(ctx, k, 0, 2); err == nil {
		t.Fatal("retry started while the first attempt was still writing")
	}
	got := make(chan []bool)
	go func() {
		todo, release2 := acquireT(t, l, k, 0, 2)
		release2(nil)
		got <- todo
	}()
	release([]bool{true, false}) // the late Puts landed for row 0 only
	if todo := <-got; !reflect.DeepEqual(todo, []bool{false, true}) {
		t.Fatalf("retry todo = %v, want row 1 only", todo)
	}
}

func TestLedgerKeepsFiveBatchesAndBoundsProducers(t *testing.T) {
	l := newLedger(2)
	k := producerPartition{producerID: 1, topic: "t"}
	for seq := int32(0); seq < 6; seq++ {
		_, release := acquireT(t, l, k, seq*10, 1)
		release([]bool{true})
	}
	if todo, release := acquireT(t, l, k, 0, 1); !todo[0] {
		t.Fatal("the sixth batch should have evicted the first")
	} else {
		release(nil)
	}
	if todo, release := acquireT(t, l, k, 50, 1); todo[0] {
		t.Fatal("the newest batch must be remembered")
	} else {
		release(nil)
	}
	for _, id := range []int64{2, 3} {
		_, release := acquireT(t, l, producerPartition{producerID: id}, 0, 1)
		release([]bool{true})
	}
	if todo, _ := acquireT(t, l, k, 50, 1); !todo[0] {
		t.Fatal("producer 1 should have been evicted by the bound of 2 producer partitions")
	}
}

// The ledger forgets batches by sequence, as the broker does, whatever order their Finishes
// registered them in. Seen in a test run: the Finish of the batch at sequence 632 ran before that
// of 553 (a larger request encoded on a goroutine), three more batches came, and forgetting by
// arrival dropped 632, which the broker still deduplicated; its retry rewrote all its rows.
func TestLedgerForgetsBySequenceNotArrival(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 1, topic: "t", partition: 3}
	for _, seq := range []int32{0, 79, 632, 553, 711, 1659, 2291, 3501} {
		_, release := acquireT(t, l, k, seq, 1)
		release([]bool{true})
	}
	for _, seq := range []int32{632, 711, 1659, 2291, 3501} {
		if todo, release := acquireT(t, l, k, seq, 1); todo[0] {
			t.Fatalf("batch %d forgotten; the broker still deduplicates it", seq)
		} else {
			release(nil)
		}
	}
	if todo, release := acquireT(t, l, k, 553, 1); !todo[0] {
		t.Fatal("batch 553 should be forgotten: five later batches came")
	} else {
		release(nil)
	}
}

// Sequences wrap from MaxInt32 to 0: the batches just past the wrap are the newest.
func TestLedgerSequenceWrap(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 1, topic: "t"}
	const top = int32(1<<31 - 1)
	for _, seq := range []int32{top - 30, top - 20, top - 10, 0, 10, 20} {
		_, release := acquireT(t, l, k, seq, 1)
		release([]bool{true})
	}
	if todo, release := acquireT(t, l, k, 20, 1); todo[0] {
		t.Fatal("the newest batch, past the wrap, was forgotten")
	} else {
		release(nil)
	}
	for _, seq := range []int32{top - 20, 0} {
		if todo, release := acquireT(t, l, k, seq, 1); todo[0] {
			t.Fatalf("batch %d forgotten; only top-30 is older than five", seq)
		} else {
			release(nil)
		}
	}
	if todo, release := acquireT(t, l, k, top-30, 1); !todo[0] {
		t.Fatal("batch top-30, the oldest across the wrap, should be forgotten")
	} else {
		release(nil)
	}
}

// The ledger file keeps exactly the batches stored in part (rows, partitions of rows, dead
// letters), and a start takes them back once.
func TestLedgerFileKeepsBatchesStoredInPart(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 7, epoch: 1, topic: "t", partition: 3, tid: 9}
	_, release := acquirePartsT(t, l, k, 100, 3)
	release(batchDone{stored: []bool{true, false, false}, parts: map[int][]uint32{2: {5}}, deadLettered: true})
	_, release = acquirePartsT(t, l, k, 200, 2)
	release(batchDone{stored: []bool{true, true}}) // whole
	_, release = acquirePartsT(t, l, k, 300, 2)
	release(batchDone{}) // nothing done
	recs := l.unfinished()
	if len(recs) != 1 || recs[0].BaseSequence != 100 || !reflect.DeepEqual(recs[0].Stored, []int{0}) ||
		!reflect.DeepEqual(recs[0].Parts, map[int][]uint32{2: {5}}) || !recs[0].DeadLettered || recs[0].TID != 9 {
		t.Fatalf("unfinished %+v, want the batch at 100 with row 0 stored and row 2 in partition 5", recs)
	}
	dir := t.TempDir()
	bad := recs[0]
	bad.BaseSequence, bad.Stored = 400, []int{7} // row 7 of 3: skipped
	if err := saveLedger(dir, append(recs, bad)); err != nil {
		t.Fatal(err)
	}
	back, err := takeLedger(dir)
	if err != nil || !reflect.DeepEqual(back, append(recs, bad)) {
		t.Fatalf("read back %+v (%v)", back, err)
	}
	if again, err := takeLedger(dir); err != nil || again != nil {
		t.Fatalf("the file was read twice: %+v (%v)", again, err)
	}
	next := newLedger(10)
	if skipped := next.restore(back); skipped != 1 {
		t.Fatalf("restore skipped %d records, want the one out of range", skipped)
	}
	todo, release := acquirePartsT(t, next, k, 100, 3)
	release(batchDone{})
	if !reflect.DeepEqual(todo.rows, []bool{false, true, true}) || !reflect.DeepEqual(todo.parts, map[int][]uint32{2: {5}}) || !todo.deadLettered {
		t.Fatalf("restored todo %+v", todo)
	}
	if err := saveLedger(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ledgerFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := takeLedger(dir); err == nil || !strings.Contains(err.Error(), ledgerFile) {
		t.Fatalf("unreadable file: %v", err)
	}
}

// Dead letters an attempt produced while others failed are remembered one by one: the next
// attempt learns which, attempts add to them, and a whole success replaces the list. A batch
// with only some dead letters (and no row) stored is kept in the ledger file, still version 1.
func TestLedgerRemembersDeadLettersProducedInPart(t *testing.T) {
	l := newLedger(10)
	k := producerPartition{producerID: 8, epoch: 0, topic: "t", partition: 0}
	_, release := acquirePartsT(t, l, k, 0, 0)
	release(batchDone{lettered: []int{2}})
	todo, release := acquirePartsT(t, l, k, 0, 0)
	if todo.deadLettered || !reflect.DeepEqual(todo.lettered, []int{2}) {
		t.Fatalf("after one of the dead letters: %+v, want record 2 listed", todo)
	}
	release(batchDone{lettered: []int{4, 2}})
	if l.rows != 2 {
		t.Errorf("rows bound counts %d for a batch of no rows with two dead letters listed, want 2", l.rows)
	}
	recs := l.unfinished()
	if len(recs) != 1 || recs[0].DeadLettered || !reflect.DeepEqual(recs[0].Lettered, []int{2, 4}) {
		t.Fatalf("unfinished %+v, want the batch with records 2 and 4 dead-lettered", recs)
	}
	dir := t.TempDir()
	if err := saveLedger(dir, recs); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ledgerFile))
	if err != nil || !strings.Contains(string(raw), `"version":1`) {
		t.Fatalf("ledger file %s (%v), want version 1", raw, err)
	}
	back, err := takeLedger(dir)
	if err != nil || !reflect.DeepEqual(back, recs) {
		t.Fatalf("read back %+v (%v)", back, err)
	}
	next := newLedger(10)
	next.restore(back)
	todo, release = acquirePartsT(t, next, k, 0, 0)
	if !reflect.DeepEqual(todo.lettered, []int{2, 4}) {
		t.Fatalf("restored todo %+v", todo)
	}
	release(batchDone{deadLettered: true, lettered: []int{7}})
	if todo, release = acquirePartsT(t, next, k, 0, 0); !todo.deadLettered || todo.lettered != nil {
		t.Fatalf("after the rest: %+v, want deadLettered and no list", todo)
	}
	release(batchDone{})
	if next.rows != 0 {
		t.Errorf("rows bound counts %d once the list is gone, want 0", next.rows)
	}
}

// The ledger's memory is bounded by rows too, not only by producer partitions: big batches of
// many producers make it forget the least recently used ones, never the batch in use.
func TestLedgerIsBoundedByRows(t *testing.T) {
	l := newLedger(1000)
	l.maxRows = 100
	for id := range int64(5) {
		_, release := acquireT(t, l, producerPartition{producerID: id}, 0, 40)
		release(make([]bool, 40))
	}
	if l.rows > 100 || l.lru.Len() != 2 {
		t.Fatalf("%d rows in %d producer partitions remembered, want at most 100 in the 2 latest", l.rows, l.lru.Len())
	}
	if todo, release := acquireT(t, l, producerPartition{producerID: 0}, 0, 40); !todo[0] {
		release(nil)
		t.Fatal("the oldest producer's batch is still remembered")
	} else {
		release(nil)
	}
	// One batch larger than the bound is still remembered while it is the one in use.
	_, release := acquireT(t, l, producerPartition{producerID: 9}, 0, 500)
	release([]bool{true})
	if todo, release := acquireT(t, l, producerPartition{producerID: 9}, 0, 500); todo[0] {
		t.Fatal("the batch in use was forgotten")
	} else {
		release(nil)
	}
}

// takeLedgerPrevious is the ledger file reader of the release before dead_lettered_records
// (56363e3^): it reads version 1 only, and encoding/json ignores fields it does not know.
func takeLedgerPrevious(dir string) ([]ledgerRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, ledgerFile))
	if err != nil {
		return nil, err
	}
	var doc ledgerDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("version %d, this release reads 1", doc.Version)
	}
	return doc.Batches, nil
}

// A rollback to the previous release must not lose the batches stored in part because one other
// batch has some of its dead letters listed. Writing the file as version 2 makes the previous
// release refuse the whole file, so every partly stored batch's retry writes all its rows again;
// written as version 1, the previous release ignores the unknown list and loses only it (and
// would then produce that batch's dead letters again, as it does when refusing the file).
// The ledger file with a list of dead letters stays readable by the release before the list:
// that release ignores the field, but refusing the file would lose every batch stored in part.
func TestLedgerFileStaysReadableByThePreviousRelease(t *testing.T) {
	l := newLedger(10)
	stored := producerPartition{producerID: 1, epoch: 0, topic: "t", partition: 0, tid: 5}
	_, release := acquirePartsT(t, l, stored, 0, 3)
	release(batchDone{stored: []bool{true, false, false}, deadLettered: true})
	lettered := producerPartition{producerID: 2, epoch: 0, topic: "t", partition: 1}
	_, release = acquirePartsT(t, l, lettered, 0, 0)
	release(batchDone{lettered: []int{2}})

	dir := t.TempDir()
	if err := saveLedger(dir, l.unfinished()); err != nil {
		t.Fatal(err)
	}
	recs, err := takeLedgerPrevious(dir)
	if err != nil {
		t.Fatalf("the previous release cannot read the ledger file, losing the batch stored in part too: %v", err)
	}
	found := false
	for _, r := range recs {
		found = found || (r.ProducerID == 1 && len(r.Stored) == 1)
	}
	if !found {
		t.Fatalf("batch stored in part missing from %+v", recs)
	}
}
