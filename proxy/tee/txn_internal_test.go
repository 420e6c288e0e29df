package tee

import (
	"os"
	"path/filepath"
	"strings"
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

// The journal gives back exactly the rows it kept, and sets aside (in a file of their own) rows
// of a table whose columns changed meanwhile instead of decoding them against the wrong schema.
func TestJournalRoundTripAndChangedColumns(t *testing.T) {
	dir := t.TempDir()
	j := &journal{dir: dir}
	cols := []openmldb.Column{{Name: "id", Type: openmldb.TypeBigInt, NotNull: true}, {Name: "s", Type: openmldb.TypeVarchar}}
	tb := &openmldb.Table{DB: "d", Name: "t", Columns: cols}
	rows := []openmldb.Row{{openmldb.Int(1), openmldb.Str("a")}, {openmldb.Int(2), openmldb.Null()}}
	if err := j.save([]heldGroup{{state: &tableState{table: tb}, putIfAbsent: true, rows: rows}}); err != nil {
		t.Fatal(err)
	}
	same := func(string, string) (*openmldb.Table, error) { return tb, nil }
	groups, unusable, err := j.load(same)
	if err != nil || len(unusable) != 0 || len(groups) != 1 || !groups[0].putIfAbsent || len(groups[0].rows) != 2 {
		t.Fatalf("load: %v %v %+v", err, unusable, groups)
	}
	for i, r := range groups[0].rows {
		for c := range r {
			if r[c] != rows[i][c] {
				t.Fatalf("row %d column %d: %+v, want %+v", i, c, r[c], rows[i][c])
			}
		}
	}
	changed := &openmldb.Table{DB: "d", Name: "t", Columns: []openmldb.Column{cols[0], {Name: "s", Type: openmldb.TypeInt}}}
	groups, unusable, err = j.load(func(string, string) (*openmldb.Table, error) { return changed, nil })
	if err != nil || len(groups) != 0 || len(unusable) != 1 || !strings.Contains(unusable[0], "columns changed") {
		t.Fatalf("load against changed columns: %v %v %+v", err, unusable, groups)
	}
	if _, err := os.Stat(filepath.Join(dir, journalFile+".unwritable")); err != nil {
		t.Fatalf("rows set aside: %v", err)
	}
	if err := j.save(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, journalFile)); !os.IsNotExist(err) {
		t.Fatalf("empty journal still on disk: %v", err)
	}
}
