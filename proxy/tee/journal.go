package tee

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// journalFile is the name of the journal in Options.JournalDir.
const journalFile = "committed-rows.json"

// journal keeps the rows of committed transactions not yet stored in OpenMLDB in a file, from the
// moment the broker has committed until they are stored, so a restart or crash (while OpenMLDB is
// down, or in the middle of the commit's writes) does not lose them: Kafka has committed those
// records and no client will send them again. The
// file is a snapshot, rewritten (write, fsync, rename, fsync of the directory) whenever the set of
// such rows changes, and removed when it is empty; New writes what it finds there.
//
// Rows are kept in OpenMLDB's own row encoding, with the columns they were encoded for: a table
// whose columns changed meanwhile is not written to (its rows stay in a file of their own for an
// operator to see).
type journal struct {
	dir      string
	mu       sync.Mutex // held by Tee.saveJournal from snapshot to write, so the newest lands last
	lockFile *os.File   // holds the directory's lock (lock, unlock)
	// asides are rows kept for an operator (journalSetAside), and imported the earlier
	// release's set-aside files taken into them, written with every save; guarded by mu.
	asides   []journalSetAside
	imported []string
}

// lockName is the file whose lock says a proxy uses the directory: two proxies sharing a journal
// would overwrite each other's rows.
const lockName = "journal.lock"

// lock takes the directory for this process, or says which directory is in use.
func (j *journal) lock() error {
	f, err := os.OpenFile(filepath.Join(j.dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("journal lock: %w", err)
	}
	// flock: the lock lasts until the file is closed, also when the process dies.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("journal %s is %w by another proxy or a journal command (%w); give each proxy a directory of its own, or retry once the journal command is done", j.dir, ErrJournalInUse, err)
	}
	j.lockFile = f
	return nil
}

// lockShared takes the directory's lock shared and at once, only to learn whether a proxy or a
// journal command holds it (ErrJournalInUse); the caller unlocks right away. A directory or lock
// file that does not exist is free.
func (j *journal) lockShared() error {
	f, err := os.Open(filepath.Join(j.dir, lockName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("journal %s is %w (%w)", j.dir, ErrJournalInUse, err)
	}
	j.lockFile = f
	return nil
}

// unlock releases the directory (closing the file drops the lock); later saves do nothing.
func (j *journal) unlock() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lockFile != nil {
		j.lockFile.Close()
		j.lockFile = nil
	}
}

// removeTemps deletes temporary files of writes a crash interrupted.
func (j *journal) removeTemps() {
	olds, _ := filepath.Glob(filepath.Join(j.dir, journalFile+".tmp-*"))
	ledgerTemps, _ := filepath.Glob(filepath.Join(j.dir, ledgerFile+".tmp-*"))
	for _, f := range append(olds, ledgerTemps...) {
		os.Remove(f)
	}
}

// journalVersion is the newest version. A file is written at the lowest version that holds its
// content (1: owed rows; 2: and pending transactions; 3: and rows set aside; 4: and rows stored
// in some of their partitions, which an earlier release would write to all of them again), so a
// proxy of an earlier release reads what it can, and refuses, naming the version, what it would
// lose.
const journalVersion = 4

// journalDoc is the file's content: rows owed to OpenMLDB, rows of transactions whose commit
// was at the broker, to be decided by their marker (markerProbe), and rows set aside.
type journalDoc struct {
	Version  int               `json:"version"`
	Groups   []journalGroup    `json:"groups"`
	Pending  []journalPending  `json:"pending,omitempty"`
	SetAside []journalSetAside `json:"set_aside,omitempty"`
	// Imported names an earlier release's set-aside files already taken into SetAside (restored
	// since, perhaps) and still to be removed: a name stays until its file is gone, so no crash
	// or failed removal gets the file taken in twice.
	Imported []string `json:"imported,omitempty"`
}

// journalSetAside is rows a start could not write (their table gone, or its columns changed),
// kept for an operator; `journal restore` moves them back. They live in the journal file itself,
// so setting them aside and restoring them each take a single atomic write: no crash can leave
// them in two places (and written twice) or in none.
type journalSetAside struct {
	ID      string           `json:"id"` // when they were set aside (UTC), or an earlier release's file
	Why     []string         `json:"why"`
	Groups  []journalGroup   `json:"groups,omitempty"`
	Pending []journalPending `json:"pending,omitempty"`
}

// legacyAsidePrefix names the files in which an earlier release set rows aside; a start or a
// journal command moves them into the journal.
const legacyAsidePrefix = journalFile + ".unwritable-"

// journalPending is a pendingCommit in the file.
type journalPending struct {
	TransactionalID string         `json:"transactional_id"`
	ProducerID      int64          `json:"producer_id"`
	Epoch           int16          `json:"epoch"`
	Topic           string         `json:"topic"`
	Partition       int32          `json:"partition"`
	Offset          int64          `json:"offset"`
	Groups          []journalGroup `json:"groups"`
}

// journalGroup is rows of one table.
type journalGroup struct {
	DB          string          `json:"db"`
	Table       string          `json:"table"`
	PutIfAbsent bool            `json:"put_if_absent"`
	Columns     []journalColumn `json:"columns"`
	Rows        [][]byte        `json:"rows"` // OpenMLDB row encoding (base64 in the file)
	// TID and StoredPartitions say which partitions of table TID already hold some rows (by
	// index in Rows): rows an attempt stored in some of their partitions only. A start writes
	// them to the other partitions only, or to all when the table now has another TID.
	TID              uint32           `json:"tid,omitempty"`
	StoredPartitions map[int][]uint32 `json:"stored_partitions,omitempty"`
}

type journalColumn struct {
	Name    string            `json:"name"`
	Type    openmldb.DataType `json:"type"`
	NotNull bool              `json:"not_null,omitempty"`
}

func journalColumns(cols []openmldb.Column) []journalColumn {
	out := make([]journalColumn, len(cols))
	for i, c := range cols {
		out[i] = journalColumn{Name: c.Name, Type: c.Type, NotNull: c.NotNull}
	}
	return out
}

func (j *journal) path() string { return filepath.Join(j.dir, journalFile) }

// save replaces the journal with groups, pending and j.asides (nothing left: the file is
// removed); j.mu is held. A row that cannot be encoded for its table is left out and counted in
// skipped: no write could store it either.
func (j *journal) save(groups []heldGroup, pending []*pendingCommit) (skipped int, err error) {
	doc := journalDoc{SetAside: j.asides, Imported: j.imported}
	doc.Groups, skipped = encodeJournalGroups(groups)
	for _, pc := range pending {
		jp := pc.describe()
		var n int
		jp.Groups, n = encodeJournalGroups(pc.groups)
		skipped += n
		doc.Pending = append(doc.Pending, jp)
	}
	j.imported, err = writeJournalDoc(j.dir, doc)
	return skipped, err
}

// encodeJournalGroups encodes groups in OpenMLDB's row encoding; rows that do not encode for
// their table are left out and counted.
func encodeJournalGroups(groups []heldGroup) (out []journalGroup, skipped int) {
	for _, g := range groups {
		tb := g.state.table
		jg := journalGroup{DB: tb.DB, Table: tb.Name, PutIfAbsent: g.putIfAbsent, Columns: journalColumns(tb.Columns)}
		for i, r := range g.rows {
			b, err := openmldb.AppendRow(nil, tb.Columns, r)
			if err != nil {
				skipped++
				continue
			}
			if g.stored != nil && len(g.stored[i]) > 0 {
				if jg.StoredPartitions == nil {
					jg.StoredPartitions = map[int][]uint32{}
					jg.TID = tb.TID
				}
				jg.StoredPartitions[len(jg.Rows)] = g.stored[i]
			}
			jg.Rows = append(jg.Rows, b)
		}
		out = append(out, jg)
	}
	return out, skipped
}

// writeFileSynced replaces dir/name with b so that a crash leaves either the old or the new file.
func writeFileSynced(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	_, werr := tmp.Write(b)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("journal: %w", werr)
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// journalLoad is what a start finds in the journal.
type journalLoad struct {
	groups  []heldGroup
	pending []*pendingCommit
	asides  []journalSetAside // all rows kept for an operator, this start's included
	// unusable says what this start set aside, and why (for the log), under asideID.
	unusable []string
	asideID  string
	// imported names an earlier release's set-aside files taken into asides (Imported), and
	// legacy those of them taken in by this load.
	imported, legacy []string
}

// changed reports whether the journal must be saved for what the load did.
func (l journalLoad) changed() bool { return len(l.unusable) > 0 || len(l.imported) > 0 }

// load reads the journal's rows back, decoded for tables that exist with the columns the rows
// were encoded for. Groups that cannot be decoded are set aside, in the journal, under an id
// naming this start, so they are neither lost nor tried again at every start.
func (j *journal) load(tables func(db, name string) (*openmldb.Table, error)) (journalLoad, error) {
	var l journalLoad
	doc, err := readJournalDoc(j.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return l, err
	}
	if l.asides, l.imported, l.legacy, err = importLegacyAsides(j.dir, doc); err != nil {
		return l, err
	}
	l.asideID = time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	rejected := journalSetAside{ID: l.asideID}
	for _, jg := range doc.Groups {
		g, why := decodeJournalGroup(jg, tables)
		if why != "" {
			rejected.Groups = append(rejected.Groups, jg)
			rejected.Why = append(rejected.Why, fmt.Sprintf("%s.%s (%d rows): %s", jg.DB, jg.Table, len(jg.Rows), why))
			continue
		}
		l.groups = append(l.groups, g)
	}
	for _, jp := range doc.Pending {
		pc, why := decodeJournalPending(jp, tables)
		if why != "" {
			// Undecided rows that could not be written either way: kept whole, with the
			// transaction, for an operator.
			rejected.Pending = append(rejected.Pending, jp)
			rejected.Why = append(rejected.Why, why+" (commit outcome unknown)")
			continue
		}
		l.pending = append(l.pending, pc)
	}
	if len(rejected.Why) > 0 {
		l.asides = append(l.asides, rejected)
		l.unusable = rejected.Why
	}
	return l, nil
}

// countAsideRows counts the rows set aside, pending transactions' included.
func countAsideRows(asides []journalSetAside) int {
	n := 0
	for _, a := range asides {
		n += countJournalRows(a.Groups)
		for _, p := range a.Pending {
			n += countJournalRows(p.Groups)
		}
	}
	return n
}

// importLegacyAsides adds to doc's set-aside rows the set-aside files of an earlier release found
// in dir (each under its file name), except those doc names as imported already, and returns the
// names of all imported files (to be removed once a journal naming them is written) and of
// those this call took in.
func importLegacyAsides(dir string, doc journalDoc) (asides []journalSetAside, imported, taken []string, err error) {
	files, err := filepath.Glob(filepath.Join(dir, legacyAsidePrefix+"*"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("journal directory: %w", err)
	}
	slices.Sort(files) // the names carry the time they were written
	asides, imported = slices.Clone(doc.SetAside), slices.Clone(doc.Imported)
	for _, f := range files {
		name := filepath.Base(f)
		if slices.Contains(imported, name) {
			continue // taken in before; its removal failed or a crash came first
		}
		old, err := readJournalDoc(f)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("set-aside file of an earlier release: %w", err)
		}
		asides = append(asides, journalSetAside{ID: name, Why: []string{"set aside by an earlier release"}, Groups: old.Groups, Pending: old.Pending})
		imported = append(imported, name)
		taken = append(taken, name)
	}
	return asides, imported, taken, nil
}

// describe is pc in the journal's terms, without its rows.
func (pc *pendingCommit) describe() journalPending {
	return journalPending{TransactionalID: pc.transactionalID, ProducerID: pc.key.producerID, Epoch: pc.key.epoch,
		Topic: pc.probe.topic, Partition: pc.probe.partition, Offset: pc.probe.offset}
}

// decodeJournalPending turns a journaled pending transaction back into a pending commit, its
// rows decoded for tables; why, if not empty, names the group that does not fit and the reason.
func decodeJournalPending(jp journalPending, tables func(db, name string) (*openmldb.Table, error)) (*pendingCommit, string) {
	pc := &pendingCommit{key: txnKey{jp.ProducerID, jp.Epoch}, transactionalID: jp.TransactionalID,
		probe: markerProbe{topic: jp.Topic, partition: jp.Partition, offset: jp.Offset}}
	for _, jg := range jp.Groups {
		g, why := decodeJournalGroup(jg, tables)
		if why != "" {
			return nil, fmt.Sprintf("%s.%s (%d rows of transaction %q): %s", jg.DB, jg.Table, len(jg.Rows), jp.TransactionalID, why)
		}
		pc.groups = append(pc.groups, g)
	}
	return pc, ""
}

func decodeJournalGroup(jg journalGroup, tables func(db, name string) (*openmldb.Table, error)) (heldGroup, string) {
	tb, err := tables(jg.DB, jg.Table)
	if err != nil {
		return heldGroup{}, err.Error()
	}
	if !slices.Equal(journalColumns(tb.Columns), jg.Columns) {
		return heldGroup{}, "the table's columns changed since the rows were kept"
	}
	g := heldGroup{state: &tableState{table: tb}, putIfAbsent: jg.PutIfAbsent}
	for i, b := range jg.Rows {
		r, err := openmldb.DecodeRow(tb.Columns, b)
		if err != nil {
			return heldGroup{}, fmt.Sprintf("row %d: %v", i, err)
		}
		var stored []uint32
		if jg.TID == tb.TID {
			stored = jg.StoredPartitions[i]
		}
		g.addRow(r, stored)
	}
	return g, ""
}
