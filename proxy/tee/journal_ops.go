package tee

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// This file is the operator's side of the journal (the journal command): reading what a
// directory holds, deciding a transaction whose outcome the proxy could not read from the log,
// and bringing set-aside rows back once their table is fixed. A change takes the directory's
// lock and edits the file; while a proxy holds the lock (it rewrites the file from memory, and
// would undo an edit), the change is asked of that proxy on its socket (journal_socket.go).

// ErrJournalInUse is wrapped by errors about a journal directory another process holds.
var ErrJournalInUse = errors.New("in use")

// JournalGroup is rows of one table kept in a journal, in OpenMLDB's row encoding for Columns.
type JournalGroup struct {
	DB, Table   string
	PutIfAbsent bool
	Columns     []openmldb.Column
	Rows        [][]byte
}

// JournalTransaction is a transaction whose commit reached the broker without the proxy seeing
// the outcome: its rows are written if Kafka committed it, dropped if it aborted. The first
// transaction marker of ProducerID after Offset in Topic/Partition (where one of its batches
// landed) tells which.
type JournalTransaction struct {
	TransactionalID string
	ProducerID      int64
	Epoch           int16
	Topic           string
	Partition       int32
	Offset          int64
	Groups          []JournalGroup
}

// JournalRows counts the rows of groups.
func JournalRows(groups []JournalGroup) int {
	n := 0
	for _, g := range groups {
		n += len(g.Rows)
	}
	return n
}

// JournalSetAside is rows a start could not write (their table gone, or its columns changed),
// kept in the journal under ID for an operator (journal restore).
type JournalSetAside struct {
	ID      string
	Why     []string
	Owed    []JournalGroup
	Pending []JournalTransaction
}

// JournalFile is what a journal directory holds (all of it is in one file). Version is 0 when
// there is no file: nothing is owed, pending or set aside.
type JournalFile struct {
	Path     string
	Version  int
	Owed     []JournalGroup // rows of committed transactions not yet stored
	Pending  []JournalTransaction
	SetAside []JournalSetAside // set-aside files of an earlier release included, by file name
}

// ReadJournal reads the journal in dir, without taking the directory: a proxy using it may
// rewrite it right after.
func ReadJournal(dir string) (JournalFile, error) {
	if _, err := os.Stat(dir); err != nil {
		return JournalFile{}, fmt.Errorf("journal directory: %w", err)
	}
	path := filepath.Join(dir, journalFile)
	doc, err := readJournalDoc(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return JournalFile{}, err
	}
	if doc.SetAside, _, _, err = importLegacyAsides(dir, doc); err != nil {
		return JournalFile{}, err
	}
	return doc.export(path), nil
}

// PendingSelector picks pending transactions by transactional id, and where that is not enough,
// by producer id, epoch and the offset their outcome is read after (negative: any).
type PendingSelector struct {
	TransactionalID string
	ProducerID      int64
	Epoch           int
	Offset          int64
}

// SelectPending picks by transactional id alone; set the other fields to narrow it.
func SelectPending(transactionalID string) PendingSelector {
	return PendingSelector{TransactionalID: transactionalID, ProducerID: -1, Epoch: -1, Offset: -1}
}

// pick returns the index of the one transaction of pending that s picks, or an error naming
// what there is to pick from (where says where they were looked for).
func (s PendingSelector) pick(pending []journalPending, where string) (int, error) {
	var picked []journalPending
	at := -1
	for i, p := range pending {
		if s.matches(p) {
			picked = append(picked, p)
			at = i
		}
	}
	switch {
	case len(pending) == 0:
		return -1, fmt.Errorf("no transaction is pending %s", where)
	case len(picked) == 0:
		return -1, fmt.Errorf("no pending transaction matches %s %s; pending: %s", s.describe(), where, describePending(pending))
	case len(picked) > 1:
		return -1, fmt.Errorf("%d pending transactions match %s (%s); name one with its producer id, epoch and offset", len(picked), s.describe(), describePending(picked))
	}
	return at, nil
}

func (s PendingSelector) matches(p journalPending) bool {
	return p.TransactionalID == s.TransactionalID && (s.ProducerID < 0 || p.ProducerID == s.ProducerID) &&
		(s.Epoch < 0 || int(p.Epoch) == s.Epoch) && (s.Offset < 0 || p.Offset == s.Offset)
}

// DecidePending settles, in the journal of dir, the one pending transaction sel picks: committed
// moves its rows to those owed to OpenMLDB (the next start writes them), otherwise they are
// dropped. For transactions the proxy leaves undecided because the log cannot tell (the batch
// compacted or deleted away, the offset gone to retention): the operator learns the outcome
// elsewhere and says it here. While a proxy uses dir, that proxy settles it, and only once its
// marker reader has given up on the transaction (it may still find the marker otherwise);
// committed rows are then written at once.
func DecidePending(dir string, sel PendingSelector, committed bool) (tx JournalTransaction, byRunningProxy bool, err error) {
	var decided JournalTransaction
	err = changeJournal(dir, func(doc *journalDoc) error {
		i, err := sel.pick(doc.Pending, "in journal "+filepath.Join(dir, journalFile))
		if err != nil {
			return err
		}
		p := doc.Pending[i]
		doc.Pending = slices.Delete(doc.Pending, i, i+1)
		if committed {
			doc.Groups = append(doc.Groups, p.Groups...)
		}
		decided = p.export()
		return nil
	})
	if errors.Is(err, ErrJournalInUse) {
		action := "abort"
		if committed {
			action = "commit"
		}
		ans, err := askRunning(dir, journalRequest{Action: action, TransactionalID: sel.TransactionalID, ProducerID: sel.ProducerID, Epoch: sel.Epoch, Offset: sel.Offset})
		if err != nil {
			return decided, true, err
		}
		return ans.Transaction.export(), true, nil
	}
	return decided, false, err
}

// RestoreSetAside moves the rows set aside under id (one of ReadJournal's SetAside) back among
// the rows owed and pending, in one write, for when their table has been recreated with the
// columns the rows were encoded for: the next start writes them (or sets them aside again, under
// a new id, if the table still does not fit). While a proxy uses dir, that proxy takes the rows
// (all of them, or none if one group still does not fit its table) and writes them at once.
func RestoreSetAside(dir, id string) (restored JournalSetAside, byRunningProxy bool, err error) {
	err = changeJournal(dir, func(doc *journalDoc) error {
		i := slices.IndexFunc(doc.SetAside, func(a journalSetAside) bool { return a.ID == id })
		if i < 0 {
			return fmt.Errorf("nothing is set aside under %q in journal %s%s", id, filepath.Join(dir, journalFile), describeAsides(doc.SetAside))
		}
		a := doc.SetAside[i]
		if err := checkNotPending(a.Pending, doc.Pending); err != nil {
			return err
		}
		doc.SetAside = slices.Delete(doc.SetAside, i, i+1)
		doc.Groups = append(doc.Groups, a.Groups...)
		doc.Pending = append(doc.Pending, a.Pending...)
		restored = a.export()
		return nil
	})
	if errors.Is(err, ErrJournalInUse) {
		ans, err := askRunning(dir, journalRequest{Action: "restore", ID: id})
		if ans.Restored != nil {
			restored = ans.Restored.export()
		}
		return restored, true, err
	}
	return restored, false, err
}

// checkNotPending refuses to bring back a transaction already pending (the same producer id,
// epoch and offset): it would be decided, and its rows written, twice.
func checkNotPending(restoring, pending []journalPending) error {
	for _, r := range restoring {
		for _, p := range pending {
			if p.ProducerID == r.ProducerID && p.Epoch == r.Epoch && p.Offset == r.Offset {
				return fmt.Errorf("transaction %q (producer id %d, epoch %d, offset %d) is already pending; settle it first (journal commit or abort)",
					r.TransactionalID, r.ProducerID, r.Epoch, r.Offset)
			}
		}
	}
	return nil
}

// changeJournal applies change to the journal of dir under the directory's lock and writes the
// result (removing the file when nothing is left). An earlier release's set-aside files are
// taken into the journal on the way.
func changeJournal(dir string, change func(*journalDoc) error) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("journal directory: %w", err)
	}
	j := &journal{dir: dir}
	if err := j.lock(); err != nil {
		return err
	}
	defer j.unlock()
	doc, err := readJournalDoc(j.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if doc.SetAside, doc.Imported, _, err = importLegacyAsides(dir, doc); err != nil {
		return err
	}
	if err := change(&doc); err != nil {
		return err
	}
	_, err = writeJournalDoc(dir, doc)
	return err
}

// storedPartitions reports whether some row of doc is known to be stored in some of its
// partitions (journalGroup.StoredPartitions), which an earlier release would write again.
func (doc journalDoc) storedPartitions() bool {
	has := func(groups []journalGroup) bool {
		for _, g := range groups {
			if len(g.StoredPartitions) > 0 {
				return true
			}
		}
		return false
	}
	pending := func(ps []journalPending) bool {
		for _, p := range ps {
			if has(p.Groups) {
				return true
			}
		}
		return false
	}
	if has(doc.Groups) || pending(doc.Pending) {
		return true
	}
	for _, a := range doc.SetAside {
		if has(a.Groups) || pending(a.Pending) {
			return true
		}
	}
	return false
}

// writeJournalDoc replaces the journal of dir with doc, or removes it when doc holds no rows, at
// the lowest version that holds its content (journalVersion). The earlier release's files doc
// names as imported are removed once it is written; it returns the names still to keep (those
// whose file was still there: the next write drops them once they are gone).
func writeJournalDoc(dir string, doc journalDoc) (imported []string, err error) {
	for _, name := range doc.Imported {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			imported = append(imported, name)
		}
	}
	doc.Imported = imported
	n := countJournalRows(doc.Groups)
	for _, p := range doc.Pending {
		n += countJournalRows(p.Groups)
	}
	n += countAsideRows(doc.SetAside)
	if n == 0 && len(imported) == 0 {
		if err := os.Remove(filepath.Join(dir, journalFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return imported, fmt.Errorf("remove journal: %w", err)
		}
		return imported, syncDir(dir) // or a crash could bring the old file, and its rows, back
	}
	switch {
	case doc.storedPartitions():
		doc.Version = 4
	case len(doc.SetAside) > 0 || len(imported) > 0:
		doc.Version = 3
	case len(doc.Pending) > 0:
		doc.Version = 2
	default:
		doc.Version = 1
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return imported, fmt.Errorf("journal: %w", err)
	}
	if err := writeFileSynced(dir, journalFile, b); err != nil {
		return imported, err
	}
	// The journal names them now: removing them can no longer lose or double their rows.
	for _, name := range imported {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return imported, fmt.Errorf("journal: remove %s, whose rows the journal has taken in: %w", name, err)
		}
	}
	if len(imported) > 0 {
		return imported, syncDir(dir)
	}
	return imported, nil
}

func countJournalRows(groups []journalGroup) int {
	n := 0
	for _, g := range groups {
		n += len(g.Rows)
	}
	return n
}

// readJournalDoc reads and checks one journal file.
func readJournalDoc(path string) (journalDoc, error) {
	var doc journalDoc
	b, err := os.ReadFile(path)
	if err != nil {
		return doc, fmt.Errorf("read journal: %w", err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, fmt.Errorf("journal %s is not readable (%w); move it away to start without it", path, err)
	}
	if doc.Version < 1 || doc.Version > journalVersion {
		return doc, fmt.Errorf("journal %s has version %d; this proxy reads versions 1 to %d", path, doc.Version, journalVersion)
	}
	return doc, nil
}

func (d journalDoc) export(path string) JournalFile {
	f := JournalFile{Path: path, Version: d.Version, Owed: exportGroups(d.Groups), Pending: exportPending(d.Pending)}
	for _, a := range d.SetAside {
		f.SetAside = append(f.SetAside, a.export())
	}
	return f
}

func (a journalSetAside) export() JournalSetAside {
	return JournalSetAside{ID: a.ID, Why: a.Why, Owed: exportGroups(a.Groups), Pending: exportPending(a.Pending)}
}

func exportPending(ps []journalPending) []JournalTransaction {
	var out []JournalTransaction
	for _, p := range ps {
		out = append(out, p.export())
	}
	return out
}

func (p journalPending) export() JournalTransaction {
	return JournalTransaction{TransactionalID: p.TransactionalID, ProducerID: p.ProducerID, Epoch: p.Epoch,
		Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, Groups: exportGroups(p.Groups)}
}

func exportGroups(groups []journalGroup) []JournalGroup {
	out := make([]JournalGroup, 0, len(groups))
	for _, g := range groups {
		cols := make([]openmldb.Column, len(g.Columns))
		for i, c := range g.Columns {
			cols[i] = openmldb.Column{Name: c.Name, Type: c.Type, NotNull: c.NotNull}
		}
		out = append(out, JournalGroup{DB: g.DB, Table: g.Table, PutIfAbsent: g.PutIfAbsent, Columns: cols, Rows: g.Rows})
	}
	return out
}

func (s PendingSelector) describe() string {
	d := fmt.Sprintf("transactional id %q", s.TransactionalID)
	if s.ProducerID >= 0 {
		d += fmt.Sprintf(" producer id %d", s.ProducerID)
	}
	if s.Epoch >= 0 {
		d += fmt.Sprintf(" epoch %d", s.Epoch)
	}
	if s.Offset >= 0 {
		d += fmt.Sprintf(" offset %d", s.Offset)
	}
	return d
}

func describePending(ps []journalPending) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%q (producer id %d, epoch %d, offset %d)", p.TransactionalID, p.ProducerID, p.Epoch, p.Offset))
	}
	return strings.Join(parts, ", ")
}

// describeAsides lists the ids rows are set aside under, for an error.
func describeAsides(as []journalSetAside) string {
	if len(as) == 0 {
		return " (nothing is set aside)"
	}
	ids := make([]string, len(as))
	for i, a := range as {
		ids[i] = a.ID
	}
	return "; set aside: " + strings.Join(ids, ", ")
}
