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

// JournalFile is the content of one journal file: the journal itself, or a file of rows the
// proxy set aside because their table was gone or had other columns at a start.
type JournalFile struct {
	Path    string
	Version int
	Owed    []JournalGroup // rows of committed transactions not yet stored
	Pending []JournalTransaction
}

// JournalContents is what a journal directory holds.
type JournalContents struct {
	Journal  *JournalFile  // nil: no rows are owed or pending
	SetAside []JournalFile // oldest first
}

// ReadJournal reads the journal and the set-aside files in dir, without taking the directory: a
// proxy using it may rewrite the journal right after.
func ReadJournal(dir string) (JournalContents, error) {
	var out JournalContents
	if _, err := os.Stat(dir); err != nil {
		return out, fmt.Errorf("journal directory: %w", err)
	}
	main, err := readJournalFile(filepath.Join(dir, journalFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, err
	}
	if err == nil {
		out.Journal = &main
	}
	asides, err := filepath.Glob(filepath.Join(dir, journalFile+".unwritable-*"))
	if err != nil {
		return out, fmt.Errorf("journal directory: %w", err)
	}
	slices.Sort(asides) // the names carry the UTC time of the start that wrote them
	for _, p := range asides {
		f, err := readJournalFile(p)
		if err != nil {
			return out, err
		}
		out.SetAside = append(out.SetAside, f)
	}
	return out, nil
}

// PendingSelector picks pending transactions by transactional id, and where that is not enough,
// by producer id and epoch (negative: any).
type PendingSelector struct {
	TransactionalID string
	ProducerID      int64
	Epoch           int
}

func (s PendingSelector) matches(p journalPending) bool {
	return p.TransactionalID == s.TransactionalID && (s.ProducerID < 0 || p.ProducerID == s.ProducerID) &&
		(s.Epoch < 0 || int(p.Epoch) == s.Epoch)
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
		var picked []int
		for i, p := range doc.Pending {
			if sel.matches(p) {
				picked = append(picked, i)
			}
		}
		switch {
		case len(picked) == 0 && len(doc.Pending) == 0:
			return fmt.Errorf("no transaction is pending in journal %s", filepath.Join(dir, journalFile))
		case len(picked) == 0:
			return fmt.Errorf("no pending transaction matches %s in journal %s; pending: %s", sel.describe(), filepath.Join(dir, journalFile), describePending(doc.Pending))
		case len(picked) > 1:
			var which []journalPending
			for _, i := range picked {
				which = append(which, doc.Pending[i])
			}
			return fmt.Errorf("%d pending transactions match %s (%s); name one with its producer id and epoch", len(picked), sel.describe(), describePending(which))
		}
		p := doc.Pending[picked[0]]
		doc.Pending = slices.Delete(doc.Pending, picked[0], picked[0]+1)
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
		ans, err := askRunning(dir, journalRequest{Action: action, TransactionalID: sel.TransactionalID, ProducerID: sel.ProducerID, Epoch: sel.Epoch})
		if err != nil {
			return decided, true, err
		}
		return ans.Transaction.export(), true, nil
	}
	return decided, false, err
}

// RestoreSetAside moves the rows of a set-aside file (one of ReadJournal's SetAside, named by
// its path or base name) back into the journal of dir and removes the file, for when their
// table has been recreated with the columns the rows were encoded for: the next start writes
// them (or sets them aside again, in a new file, if the table still does not fit). A transaction
// the journal already lists as pending is not brought in twice. While a proxy uses dir, that
// proxy takes the rows (all of them, or none if one group still does not fit its table) and
// writes them at once.
func RestoreSetAside(dir, file string) (restored JournalFile, byRunningProxy bool, err error) {
	path := filepath.Join(dir, filepath.Base(file))
	if !strings.HasPrefix(filepath.Base(file), journalFile+".unwritable-") {
		return JournalFile{}, false, fmt.Errorf("%s is not a set-aside file of the journal (%s.unwritable-*)", file, journalFile)
	}
	err = changeJournal(dir, func(doc *journalDoc) error {
		aside, err := readJournalDoc(path)
		if err != nil {
			return err
		}
		for _, ap := range aside.Pending {
			for _, p := range doc.Pending {
				if p.ProducerID == ap.ProducerID && p.Epoch == ap.Epoch {
					return fmt.Errorf("%s has transaction %q (producer id %d, epoch %d), which the journal already lists as pending; settle that one first (journal commit or abort)",
						path, ap.TransactionalID, ap.ProducerID, ap.Epoch)
				}
			}
		}
		doc.Groups = append(doc.Groups, aside.Groups...)
		doc.Pending = append(doc.Pending, aside.Pending...)
		restored = aside.export(path)
		return nil
	})
	if errors.Is(err, ErrJournalInUse) {
		ans, err := askRunning(dir, journalRequest{Action: "restore", File: filepath.Base(file)})
		if ans.Restored != nil {
			restored = ans.Restored.export(path)
		}
		return restored, true, err
	}
	if err != nil {
		return JournalFile{}, false, err
	}
	// The rows are in the journal now (synced): the file goes, or a later restore would bring
	// them in twice.
	if err := os.Remove(path); err != nil {
		return restored, false, fmt.Errorf("rows restored, but %s could not be removed (remove it before restoring again): %w", path, err)
	}
	return restored, false, syncDir(dir)
}

// changeJournal applies change to the journal of dir under the directory's lock and writes the
// result (removing the file when nothing is left).
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
	if errors.Is(err, os.ErrNotExist) {
		doc = journalDoc{Version: 1}
	} else if err != nil {
		return err
	}
	if err := change(&doc); err != nil {
		return err
	}
	return writeJournalDoc(dir, doc)
}

// writeJournalDoc replaces the journal of dir with doc, or removes it when doc holds no rows. The
// version is 1 while nothing is pending, so a proxy of the previous release can still read it.
func writeJournalDoc(dir string, doc journalDoc) error {
	n := 0
	for _, g := range doc.Groups {
		n += len(g.Rows)
	}
	for _, p := range doc.Pending {
		for _, g := range p.Groups {
			n += len(g.Rows)
		}
	}
	if n == 0 {
		if err := os.Remove(filepath.Join(dir, journalFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove journal: %w", err)
		}
		return syncDir(dir) // or a crash could bring the old file, and its rows, back
	}
	doc.Version = 1
	if len(doc.Pending) > 0 {
		doc.Version = journalVersion
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return writeFileSynced(dir, journalFile, b)
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
	if doc.Version != 1 && doc.Version != journalVersion {
		return doc, fmt.Errorf("journal %s has version %d; this proxy reads versions 1 and %d", path, doc.Version, journalVersion)
	}
	return doc, nil
}

func readJournalFile(path string) (JournalFile, error) {
	doc, err := readJournalDoc(path)
	if err != nil {
		return JournalFile{}, err
	}
	return doc.export(path), nil
}

func (d journalDoc) export(path string) JournalFile {
	f := JournalFile{Path: path, Version: d.Version, Owed: exportGroups(d.Groups)}
	for _, p := range d.Pending {
		f.Pending = append(f.Pending, p.export())
	}
	return f
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
	return d
}

func describePending(ps []journalPending) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%q (producer id %d, epoch %d)", p.TransactionalID, p.ProducerID, p.Epoch))
	}
	return strings.Join(parts, ", ")
}
