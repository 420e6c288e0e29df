package tee

import (
	"os"
	"path/filepath"
	"slices"
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
	h.hold("tx", txnKey{7, 0}, markerProbe{}, nil, false, two)
	h.fence("tx", 7, 1)
	if drops[dropFenced] != 2 || h.openRows != 0 {
		t.Fatalf("after the fence: dropped %v, held %d", drops, h.openRows)
	}
	h.fence("tx", 7, 0) // an older InitProducerId answer finishing late changes nothing
	h.sweep(time.Now().Add(30 * time.Second))
	h.hold("tx", txnKey{7, 0}, markerProbe{}, nil, false, two) // the zombie's late Finish
	if drops[dropFenced] != 4 || h.openRows != 0 {
		t.Fatalf("zombie rows: dropped %v, held %d", drops, h.openRows)
	}
	h.hold("tx", txnKey{7, 1}, markerProbe{}, nil, false, two) // the fencing producer's own transaction
	h.hold("tx", txnKey{9, 0}, markerProbe{}, nil, false, two) // another producer id (KIP-890 may assign one)
	h.hold("tx2", txnKey{8, 0}, markerProbe{}, nil, false, two)
	if drops[dropFenced] != 4 || h.openRows != 6 {
		t.Fatalf("live transactions: dropped %v, held %d", drops, h.openRows)
	}
	if got := h.take(txnKey{7, 1}); countRows(got) != 2 {
		t.Fatalf("fencing producer's rows: %d", countRows(got))
	}
	h.nextSweep.Store(0)
	h.sweep(time.Now().Add(3 * time.Minute)) // past maxAge: the fence is forgotten, the rest expire
	h.hold("tx", txnKey{7, 0}, markerProbe{}, nil, false, two)
	if h.openRows != 2 {
		t.Fatalf("after the fence was forgotten: held %d, want 2", h.openRows)
	}
}

// The journal gives back exactly the rows it kept (every column type, NULLs), and sets aside,
// in the journal itself, under an id per start, rows of a table whose columns changed or that is
// gone, instead of decoding them against the wrong schema; rows set aside earlier are kept, and
// an earlier release's set-aside file is taken in once, also when a crash left it behind after
// the journal took it.
func TestJournalRoundTripAndSetAside(t *testing.T) {
	dir := t.TempDir()
	j := &journal{dir: dir}
	cols := []openmldb.Column{
		{Name: "id", Type: openmldb.TypeBigInt, NotNull: true}, {Name: "s", Type: openmldb.TypeVarchar},
		{Name: "i16", Type: openmldb.TypeSmallInt}, {Name: "i32", Type: openmldb.TypeInt},
		{Name: "f", Type: openmldb.TypeFloat}, {Name: "d", Type: openmldb.TypeDouble},
		{Name: "b", Type: openmldb.TypeBool}, {Name: "day", Type: openmldb.TypeDate}, {Name: "ts", Type: openmldb.TypeTimestamp},
	}
	tb := &openmldb.Table{DB: "d", Name: "t", Columns: cols}
	rows := []openmldb.Row{
		{openmldb.Int(1), openmldb.Str("a"), openmldb.Int(-7), openmldb.Int(1 << 20), openmldb.Float(float64(float32(4.4))),
			openmldb.Float(5.555), openmldb.Bool(true), openmldb.Date(2022, 4, 27), openmldb.Int(1651051906000)},
		{openmldb.Int(2), openmldb.Null(), openmldb.Null(), openmldb.Null(), openmldb.Null(), openmldb.Null(), openmldb.Null(), openmldb.Null(), openmldb.Null()},
	}
	wantPending := &pendingCommit{key: txnKey{42, 3}, transactionalID: "app", probe: markerProbe{topic: "topic1", partition: 2, offset: 77},
		groups: []heldGroup{{state: &tableState{table: tb}, rows: rows[:1]}}}
	if _, err := j.save([]heldGroup{{state: &tableState{table: tb}, putIfAbsent: true, rows: rows}}, []*pendingCommit{wantPending}); err != nil {
		t.Fatal(err)
	}
	if v := diskVersion(t, dir); v != 2 {
		t.Fatalf("journal with pending rows written at version %d, want 2", v)
	}
	l, err := j.load(func(string, string) (*openmldb.Table, error) { return tb, nil })
	if err != nil || l.changed() || len(l.asides) != 0 || len(l.groups) != 1 || !l.groups[0].putIfAbsent || len(l.groups[0].rows) != 2 {
		t.Fatalf("load: %v %+v", err, l)
	}
	pending := l.pending
	if len(pending) != 1 || pending[0].key != wantPending.key || pending[0].transactionalID != "app" || pending[0].probe != wantPending.probe ||
		len(pending[0].groups) != 1 || len(pending[0].groups[0].rows) != 1 || pending[0].groups[0].rows[0][0] != rows[0][0] {
		t.Fatalf("pending commits read back: %+v", pending)
	}
	for i, r := range l.groups[0].rows {
		for c := range r {
			if r[c] != rows[i][c] {
				t.Fatalf("row %d column %s: %+v, want %+v", i, cols[c].Name, r[c], rows[i][c])
			}
		}
	}

	changedCols := append([]openmldb.Column(nil), cols...)
	changedCols[1].Type = openmldb.TypeInt
	changed := &openmldb.Table{DB: "d", Name: "t", Columns: changedCols}
	l, err = j.load(func(string, string) (*openmldb.Table, error) { return changed, nil })
	if err != nil || len(l.unusable) != 2 || !strings.Contains(l.unusable[0], "columns changed") || !strings.Contains(l.unusable[1], "commit outcome unknown") ||
		len(l.groups) != 0 || len(l.pending) != 0 || len(l.asides) != 1 || len(l.asides[0].Groups) != 1 || len(l.asides[0].Pending) != 1 || l.asides[0].ID != l.asideID {
		t.Fatalf("load against changed columns: %v %+v", err, l)
	}
	j.asides = l.asides // as the start does, then saves
	if _, err := j.save(nil, nil); err != nil {
		t.Fatal(err)
	}
	if v := diskVersion(t, dir); v != 3 {
		t.Fatalf("journal with rows set aside written at version %d, want 3", v)
	}
	// The next start, the table gone: nothing new to set aside, the earlier rows kept.
	l, err = j.load(func(db, name string) (*openmldb.Table, error) { return nil, openmldb.ErrTableNotFound })
	if err != nil || l.changed() || len(l.asides) != 1 {
		t.Fatalf("load with only set-aside rows: %v %+v", err, l)
	}

	// An earlier release's file: taken in under its name, once, also when it is still there after
	// the save that took it in (its removal failed, or a crash came first); the journal names it
	// until it is gone.
	legacy := filepath.Join(dir, journalFile+".unwritable-20261124T101010.000000000Z")
	legacyDoc := []byte(`{"version":1,"groups":[{"db":"d","table":"gone","columns":[{"name":"id","type":4}],"rows":["AQ=="]}]}`)
	if err := os.WriteFile(legacy, legacyDoc, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = j.load(func(string, string) (*openmldb.Table, error) { return tb, nil })
	if err != nil || len(l.asides) != 2 || l.asides[1].ID != filepath.Base(legacy) || len(l.legacy) != 1 || !l.changed() {
		t.Fatalf("load with an earlier release's set-aside file: %v %+v", err, l)
	}
	j.asides, j.imported = l.asides, l.imported
	if _, err := j.save(nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("the earlier release's file is still there after the save that took it in: %v", err)
	}
	j.asides = j.asides[:1]                                        // its rows restored meanwhile
	if err := os.WriteFile(legacy, legacyDoc, 0o600); err != nil { // as if its removal had failed
		t.Fatal(err)
	}
	if _, err := j.save(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, legacyDoc, 0o600); err != nil { // and once more
		t.Fatal(err)
	}
	l, err = j.load(func(string, string) (*openmldb.Table, error) { return tb, nil })
	if err != nil || len(l.asides) != 1 || len(l.legacy) != 0 {
		t.Fatalf("load with an earlier release's file already taken in: %v %+v; want it not taken in again", err, l)
	}
	j.asides, j.imported = l.asides, l.imported
	for range 2 { // the first save removes the file, the second forgets its name
		if _, err := j.save(nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) || len(j.imported) != 0 {
		t.Fatalf("after two saves: file %v, names kept %v; want both gone", err, j.imported)
	}

	// A version this release does not know is refused, naming it.
	if err := os.WriteFile(filepath.Join(dir, journalFile), []byte(`{"version":5,"groups":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := j.load(func(string, string) (*openmldb.Table, error) { return tb, nil }); err == nil || !strings.Contains(err.Error(), "has version 5; this proxy reads versions 1 to 4") {
		t.Fatalf("load of a version 5 journal: %v", err)
	}

	j.asides = nil
	if _, err := j.save(nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, journalFile)); !os.IsNotExist(err) {
		t.Fatalf("empty journal still on disk: %v", err)
	}
}

// diskVersion is the version of the journal file in dir.
func diskVersion(t *testing.T, dir string) int {
	t.Helper()
	doc, err := readJournalDoc(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	return doc.Version
}

// The rows owed to OpenMLDB include those an attempt is writing right now, merged by table.
func TestOwedIncludesRowsBeingWritten(t *testing.T) {
	h := newHeldRows(time.Minute, func(string, int) {}, func(int, int) {})
	tb := &openmldb.Table{DB: "d", Name: "t"}
	st := &tableState{table: tb}
	one := []openmldb.Row{{openmldb.Int(1)}}
	h.settle(txnKey{1, 0}, 0, 0, []heldGroup{{state: st, rows: one}})
	h.settle(txnKey{2, 0}, 0, 0, []heldGroup{{state: st, rows: one}})
	taken, attempt := h.takeCommitted(txnKey{1, 0})
	if owed, _ := h.journalState(); len(owed) != 1 || len(owed[0].rows) != 2 {
		t.Fatalf("owed while an attempt writes: %+v", owed)
	}
	h.settle(txnKey{1, 0}, attempt, countRows(taken), nil)
	if owed, _ := h.journalState(); len(owed) != 1 || len(owed[0].rows) != 1 {
		t.Fatalf("owed after the attempt stored its rows: %+v", owed)
	}
}

// The partitions a row is already stored in survive the journal, aligned to the rows kept (a row
// that cannot be encoded is left out before it), and only for the same table: a table created
// again under the name (another TID) holds none of them.
func TestJournalKeepsStoredPartitionsOfItsTable(t *testing.T) {
	j := &journal{dir: t.TempDir()}
	cols := []openmldb.Column{{Name: "id", Type: openmldb.TypeBigInt, NotNull: true}}
	tb := &openmldb.Table{DB: "d", Name: "t", TID: 7, Columns: cols}
	rows := []openmldb.Row{{openmldb.Null()}, {openmldb.Int(1)}, {openmldb.Int(2)}} // the first cannot be encoded (NOT NULL)
	g := heldGroup{state: &tableState{table: tb}}
	for i, r := range rows {
		var stored []uint32
		if i == 2 {
			stored = []uint32{3, 5}
		}
		g.addRow(r, stored)
	}
	if skipped, err := j.save([]heldGroup{g}, nil); err != nil || skipped != 1 {
		t.Fatalf("save: skipped %d, %v", skipped, err)
	}
	// An earlier release, which would write the row to partitions 3 and 5 again, refuses it.
	if v := diskVersion(t, j.dir); v != 4 {
		t.Fatalf("journal with stored partitions written at version %d, want 4", v)
	}
	l, err := j.load(func(string, string) (*openmldb.Table, error) { return tb, nil })
	if err != nil || len(l.groups) != 1 {
		t.Fatalf("load: %v %+v", err, l)
	}
	got := l.groups[0]
	if len(got.rows) != 2 || len(got.stored) != 2 || got.stored[0] != nil || !slices.Equal(got.stored[1], []uint32{3, 5}) || got.rows[1][0] != openmldb.Int(2) {
		t.Fatalf("rows %v stored %v, want rows 1 and 2, row 2 stored in partitions 3 and 5", got.rows, got.stored)
	}
	again := &openmldb.Table{DB: "d", Name: "t", TID: 8, Columns: cols}
	l, err = j.load(func(string, string) (*openmldb.Table, error) { return again, nil })
	if err != nil || len(l.groups) != 1 || len(l.groups[0].rows) != 2 || l.groups[0].stored != nil {
		t.Fatalf("load against a table created again: %v, stored %v", err, l.groups)
	}
}

// Merging groups keeps each row's stored partitions next to it.
func TestMergeGroupsKeepsStoredPartitionsAligned(t *testing.T) {
	st := &tableState{table: &openmldb.Table{DB: "d", Name: "t"}}
	a := heldGroup{state: st, rows: []openmldb.Row{{openmldb.Int(1)}}}
	b := heldGroup{state: st, rows: []openmldb.Row{{openmldb.Int(2)}, {openmldb.Int(3)}}, stored: [][]uint32{nil, {4}}}
	c := heldGroup{state: st, rows: []openmldb.Row{{openmldb.Int(4)}}}
	out := mergeGroups([]heldGroup{a, b, c})
	if len(out) != 1 || len(out[0].rows) != 4 || len(out[0].stored) != 4 || !slices.Equal(out[0].stored[2], []uint32{4}) ||
		out[0].stored[0] != nil || out[0].stored[1] != nil || out[0].stored[3] != nil {
		t.Fatalf("merged %+v", out)
	}
}
