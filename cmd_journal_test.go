package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// writeTestJournal writes, by hand (not through the tee's code, so the command is checked
// against the on-disk format, not against itself), a journal with one row owed to kafka_test.t1,
// a pending transaction "app-1" with two rows, and rows set aside under "2026-11-25T01:02:03Z"
// (one owed, and transaction "app-2"); and a set-aside file of the previous release holding
// "app-1" again.
func writeTestJournal(t *testing.T, dir string) {
	t.Helper()
	cols := []openmldb.Column{{Name: "id", Type: openmldb.TypeBigInt, NotNull: true}, {Name: "name", Type: openmldb.TypeString}}
	group := func(vals ...openmldb.Value) string {
		var rows []string
		for i, v := range vals {
			b, err := openmldb.AppendRow(nil, cols, openmldb.Row{openmldb.Int(int64(11 * i)), v})
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, `"`+base64.StdEncoding.EncodeToString(b)+`"`)
		}
		return `{"db":"kafka_test","table":"t1","put_if_absent":false,"columns":[{"name":"id","type":4,"not_null":true},{"name":"name","type":14}],"rows":[` + strings.Join(rows, ",") + `]}`
	}
	app1 := `{"transactional_id":"app-1","producer_id":7,"epoch":3,"topic":"orders","partition":2,"offset":41,"groups":[` + group(openmldb.Null(), openmldb.Str("three")) + `]}`
	app2 := `{"transactional_id":"app-2","producer_id":8,"epoch":0,"topic":"orders","partition":1,"offset":5,"groups":[` + group(openmldb.Str("four")) + `]}`
	files := map[string]string{
		"committed-rows.json": `{"version":3,"groups":[` + group(openmldb.Str("one")) + `],"pending":[` + app1 + `],
		  "set_aside":[{"id":"2026-11-25T01:02:03Z","why":["kafka_test.t1 (1 rows): table not found"],"groups":[` + group(openmldb.Str("five")) + `],"pending":[` + app2 + `]}]}`,
		"committed-rows.json.unwritable-20261124T010203.000000000Z": `{"version":2,"groups":[],"pending":[` + app1 + `]}`,
	}
	for name, doc := range files {
		if !json.Valid([]byte(doc)) {
			t.Fatalf("test journal %s is not JSON", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func journalOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runJournal(args, &out)
	return out.String(), err
}

// The journal command shows what a directory holds (rows decoded with --rows, an earlier
// release's set-aside file among the rest), reports a proxy that holds the directory but cannot
// be reached, settles a pending transaction named by its transactional id, refuses to bring back
// a transaction already pending, and restores set-aside rows, also the earlier release's (whose
// file then goes); its errors say what to do.
func TestJournalCommand(t *testing.T) {
	dir := t.TempDir()
	if out, err := journalOut(t, "show", dir); err != nil || !strings.Contains(out, "no rows owed, pending or set aside") {
		t.Fatalf("show on an empty directory: %q %v", out, err)
	}
	writeTestJournal(t, dir)
	legacy := "committed-rows.json.unwritable-20261124T010203.000000000Z"

	out, err := journalOut(t, "show", "--rows", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"journal " + filepath.Join(dir, "committed-rows.json") + " (version 3)\n",
		"owed to OpenMLDB (committed in Kafka, not stored yet): 1 row\n",
		`{"id":0,"name":"one"}`,
		`transactional id "app-1" producer id 7 epoch 3 offset 41: 2 rows; decided by the first COMMIT or ABORT marker of producer id 7 after offset 41 of orders partition 2`,
		`{"id":0,"name":null}`,
		`{"id":11,"name":"three"}`,
		`set aside under "2026-11-25T01:02:03Z" (journal restore DIR 2026-11-25T01:02:03Z, once the tables fit):`,
		"why: kafka_test.t1 (1 rows): table not found",
		`{"id":0,"name":"five"}`,
		`transactional id "app-2" producer id 8 epoch 0 offset 5: 1 row`,
		`set aside under "` + legacy + `"`,
		"why: set aside by an earlier release",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("show --rows lacks %q:\n%s", want, out)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"settle", dir}, `unknown action "settle"`},
		{[]string{"commit", dir}, "--transactional-id is required"},
		{[]string{"commit", "--rows", dir}, "--rows applies to journal show only"},
		{[]string{"show", "--offset", "3", dir}, "--offset applies to journal commit and abort only"},
		{[]string{"restore", dir}, "want DIR SET_ASIDE_ID, got 1 operand(s)"},
		{[]string{"commit", "--transactional-id", "app-3", dir}, `no pending transaction matches transactional id "app-3"`},
		{[]string{"commit", "--transactional-id", "app-1", "--offset", "40", dir}, `no pending transaction matches transactional id "app-1" offset 40`},
		{[]string{"restore", dir, "2026-01-01T00:00:00Z"}, `nothing is set aside under "2026-01-01T00:00:00Z"`},
		{[]string{"restore", dir, legacy}, `transaction "app-1" (producer id 7, epoch 3, offset 41) is already pending; settle it first`},
	} {
		if _, err := journalOut(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("journal %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}

	// A process holds the directory's lock without taking changes on the socket.
	lock, err := os.OpenFile(filepath.Join(dir, "journal.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if out, err := journalOut(t, "show", dir); err != nil || !strings.Contains(out, "(a proxy holds the journal, but its view is not shown:") ||
		strings.Contains(out, "the running proxy") {
		t.Fatalf("show while locked by a process without the socket: %q %v", out, err)
	}
	if _, err := journalOut(t, "abort", "--transactional-id", "app-1", dir); err == nil ||
		!strings.Contains(err.Error(), "a proxy holds journal "+dir) || !strings.Contains(err.Error(), "does not take changes on "+filepath.Join(dir, "journal.sock")) {
		t.Fatalf("abort while locked by a process without the socket: %v", err)
	}
	lock.Close()

	out, err = journalOut(t, "commit", "--transactional-id", "app-1", "--producer-id", "7", "--epoch", "3", "--offset", "41", dir)
	if err != nil || !strings.Contains(out, `transaction "app-1" (producer id 7, epoch 3) settled as committed: its 2 rows are owed to OpenMLDB, and the next start writes them`) {
		t.Fatalf("commit: %q %v", out, err)
	}
	out, err = journalOut(t, "restore", dir, "2026-11-25T01:02:03Z")
	if err != nil || !strings.Contains(out, `restored 1 row owed and 1 pending transaction set aside under "2026-11-25T01:02:03Z"; the next start writes them`) {
		t.Fatalf("restore: %q %v", out, err)
	}
	out, err = journalOut(t, "show", dir)
	if err != nil || !strings.Contains(out, "owed to OpenMLDB (committed in Kafka, not stored yet): 4 rows\n") ||
		!strings.Contains(out, `transactional id "app-2"`) || strings.Count(out, `transactional id "app-1"`) != 1 || strings.Contains(out, "2026-11-25T01:02:03Z") {
		t.Fatalf("show after commit and restore: %q %v; want 1+2+1 rows owed, app-2 pending, app-1 only in the earlier release's file", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, legacy)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the earlier release's set-aside file was not taken into the journal: %v", err)
	}
	out, err = journalOut(t, "restore", dir, legacy)
	if err != nil || !strings.Contains(out, "restored 0 rows owed and 1 pending transaction") {
		t.Fatalf("restore of the earlier release's rows: %q %v", out, err)
	}
}

// show tells, for each pending transaction, what the running proxy says of it: given up on (and
// why: settle it), still read, or not among those whose answer it will never see (its commit is
// at the broker). Set-aside transactions are not the running proxy's.
func TestJournalShowsTheRunningProxysView(t *testing.T) {
	pending := func(id string, pid int64) tee.JournalTransaction {
		return tee.JournalTransaction{TransactionalID: id, ProducerID: pid, Epoch: 1, Topic: "orders", Offset: 9}
	}
	f := tee.JournalFile{Path: "/j/committed-rows.json", Version: 3,
		Pending:  []tee.JournalTransaction{pending("gone", 1), pending("reading", 2), pending("at-broker", 3)},
		SetAside: []tee.JournalSetAside{{ID: "x", Pending: []tee.JournalTransaction{pending("aside", 4)}}}}
	status := []tee.PendingStatus{
		{TransactionalID: "gone", ProducerID: 1, Epoch: 1, Offset: 9, Undecidable: "offset 9 of orders partition 0 is out of range"},
		{TransactionalID: "reading", ProducerID: 2, Epoch: 1, Offset: 9},
	}
	var out bytes.Buffer
	if err := printJournal(&out, "/j", f, journalView{running: true, status: status}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"a proxy is running on it: commit, abort and restore go to it",
		`"gone" producer id 1 epoch 1 offset 9: 0 rows; decided by`,
		"the running proxy cannot tell how it ended (offset 9 of orders partition 0 is out of range): settle it with journal commit or abort",
		"the running proxy is reading its outcome (waiting for the marker)",
		"the running proxy does not list it as undecided: its commit is at the broker",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("show lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "the running proxy") != 3 { // the three transactions, not the set-aside one
		t.Fatalf("the running proxy's view printed for a set-aside transaction too:\n%s", got)
	}
}

// show --rows numbers a table's rows across its groups (as it counts them), so a row it cannot
// decode is named by its place among the table's rows, not within one group.
func TestJournalShowNumbersRowsAcrossGroups(t *testing.T) {
	dir := t.TempDir()
	cols := []openmldb.Column{{Name: "id", Type: openmldb.TypeBigInt, NotNull: true}}
	good, err := openmldb.AppendRow(nil, cols, openmldb.Row{openmldb.Int(1)})
	if err != nil {
		t.Fatal(err)
	}
	group := func(rows ...[]byte) string {
		var enc []string
		for _, r := range rows {
			enc = append(enc, `"`+base64.StdEncoding.EncodeToString(r)+`"`)
		}
		return `{"db":"kafka_test","table":"t1","put_if_absent":false,"columns":[{"name":"id","type":4,"not_null":true}],"rows":[` + strings.Join(enc, ",") + `]}`
	}
	doc := `{"version":1,"groups":[` + group(good, good) + `,` + group(good, []byte("not a row")) + `]}`
	if err := os.WriteFile(filepath.Join(dir, "committed-rows.json"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := journalOut(t, "show", "--rows", dir)
	if err != nil || !strings.Contains(out, "kafka_test.t1: 4 rows\n") || strings.Count(out, `{"id":1}`) != 3 ||
		!strings.Contains(out, "row 4 of 4: cannot decode for the columns kept with it") {
		t.Fatalf("show --rows: %q %v; want 4 rows, 3 decoded and the 4th named as such", out, err)
	}
}
