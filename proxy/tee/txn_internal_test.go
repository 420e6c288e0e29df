package tee

import (
	"testing"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// A fenced producer's Produce that finishes after the fence (a zombie) is not held again: its
// transaction can no longer commit. Other identities are held as before, and the fence is
// forgotten after maxAge.
func TestHoldAfterFence(t *testing.T) {
	drops := map[string]int{}
	h := newHeldRows(time.Minute, func(reason string, rows int) { drops[reason] += rows }, func(int, int) {})
	two := []openmldb.Row{{openmldb.Int(1)}, {openmldb.Int(2)}}
	h.hold("tx", txnKey{7, 0}, nil, false, two)
	h.fence("tx", 7, 1)
	if drops[dropFenced] != 2 || h.openRows != 0 {
		t.Fatalf("after the fence: dropped %v, held %d", drops, h.openRows)
	}
	h.fence("tx", 7, 0) // an older InitProducerId answer finishing late changes nothing
	h.sweep(time.Now().Add(30 * time.Second))
	h.hold("tx", txnKey{7, 0}, nil, false, two) // the zombie's late Finish
	if drops[dropFenced] != 4 || h.openRows != 0 {
		t.Fatalf("zombie rows: dropped %v, held %d", drops, h.openRows)
	}
	h.hold("tx", txnKey{7, 1}, nil, false, two) // the fencing producer's own transaction
	h.hold("tx", txnKey{9, 0}, nil, false, two) // another producer id (KIP-890 may assign one)
	h.hold("tx2", txnKey{8, 0}, nil, false, two)
	if drops[dropFenced] != 4 || h.openRows != 6 {
		t.Fatalf("live transactions: dropped %v, held %d", drops, h.openRows)
	}
	if got := h.take(txnKey{7, 1}); countRows(got) != 2 {
		t.Fatalf("fencing producer's rows: %d", countRows(got))
	}
	h.nextSweep.Store(0)
	h.sweep(time.Now().Add(3 * time.Minute)) // past maxAge: the fence is forgotten, the rest expire
	h.hold("tx", txnKey{7, 0}, nil, false, two)
	if h.openRows != 2 {
		t.Fatalf("after the fence was forgotten: held %d, want 2", h.openRows)
	}
}
