package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// writeTestJournal writes a journal of the on-disk format by hand (not through the tee's code,
// so the command is checked against the format, not against itself): one row owed to
// kafka_test.t1 and a pending transaction "app-1" with two rows.
func writeTestJournal(t *testing.T, dir, name string) {
	t.Helper()
	cols := []openmldb.Column{{Name: "id", Type: openmldb.TypeBigInt, NotNull: true}, {Name: "name", Type: openmldb.TypeString}}
	row := func(id int64, name openmldb.Value) string {
		b, err := openmldb.AppendRow(nil, cols, openmldb.Row{openmldb.Int(id), name})
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	colsJSON := `[{"name":"id","type":4,"not_null":true},{"name":"name","type":14}]`
	doc := `{"version":2,
	  "groups":[{"db":"kafka_test","table":"t1","put_if_absent":false,"columns":` + colsJSON + `,"rows":["` + row(1, openmldb.Str("one")) + `"]}],
	  "pending":[{"transactional_id":"app-1","producer_id":7,"epoch":3,"topic":"orders","partition":2,"offset":41,
	    "groups":[{"db":"kafka_test","table":"t1","put_if_absent":false,"columns":` + colsJSON + `,"rows":["` + row(2, openmldb.Null()) + `","` + row(3, openmldb.Str("three")) + `"]}]}]}`
	if !json.Valid([]byte(doc)) {
		t.Fatal("test journal is not JSON")
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

func journalOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runJournal(args, &out)
	return out.String(), err
}

// The journal command shows what a directory holds (rows decoded with --rows), refuses changes
// while the directory is locked by a proxy, settles a pending transaction named by its
// transactional id, and brings a set-aside file back; its errors say what to do.
func TestJournalCommand(t *testing.T) {
	dir := t.TempDir()
	if out, err := journalOut(t, "show", dir); err != nil || !strings.Contains(out, "no rows owed or pending") {
		t.Fatalf("show on an empty directory: %q %v", out, err)
	}
	writeTestJournal(t, dir, "committed-rows.json")
	writeTestJournal(t, dir, "committed-rows.json.unwritable-20261125T010203.000000000Z")

	out, err := journalOut(t, "show", "--rows", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"owed to OpenMLDB (committed in Kafka, not stored yet): 1 row\n",
		`{"id":1,"name":"one"}`,
		`transactional id "app-1" producer id 7 epoch 3: 2 rows; decided by the first COMMIT or ABORT marker of producer id 7 after offset 41 of orders partition 2`,
		`{"id":2,"name":null}`,
		`{"id":3,"name":"three"}`,
		"set aside (journal restore DIR FILE brings these back once their table fits) " + filepath.Join(dir, "committed-rows.json.unwritable-20261125T010203.000000000Z"),
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
		{[]string{"show", "--transactional-id", "x", dir}, "--transactional-id applies to journal commit and abort only"},
		{[]string{"restore", dir}, "want DIR FILE, got 1 operand(s)"},
		{[]string{"commit", "--transactional-id", "app-2", dir}, `no pending transaction matches transactional id "app-2"`},
		{[]string{"restore", dir, "other-file"}, "is not a set-aside file of the journal"},
	} {
		if _, err := journalOut(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("journal %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}

	// A running proxy holds the directory's lock.
	lock, err := os.OpenFile(filepath.Join(dir, "journal.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := journalOut(t, "abort", "--transactional-id", "app-1", dir); err == nil ||
		!strings.Contains(err.Error(), "a proxy holds journal "+dir) || !strings.Contains(err.Error(), "does not take changes on "+filepath.Join(dir, "journal.sock")) {
		t.Fatalf("abort while locked by a process without the socket: %v", err)
	}
	lock.Close()

	if _, err := journalOut(t, "restore", dir, "committed-rows.json.unwritable-20261125T010203.000000000Z"); err == nil ||
		!strings.Contains(err.Error(), `has transaction "app-1" (producer id 7, epoch 3), which the journal already lists as pending`) {
		t.Fatalf("restoring a transaction already pending: %v", err)
	}
	out, err = journalOut(t, "commit", "--transactional-id", "app-1", "--producer-id", "7", dir)
	if err != nil || !strings.Contains(out, `transaction "app-1" (producer id 7, epoch 3) settled as committed: its 2 rows are owed to OpenMLDB`) {
		t.Fatalf("commit: %q %v", out, err)
	}
	out, err = journalOut(t, "restore", dir, "committed-rows.json.unwritable-20261125T010203.000000000Z")
	if err != nil || !strings.Contains(out, "restored 1 row owed and 1 pending transaction from") {
		t.Fatalf("restore: %q %v", out, err)
	}
	out, err = journalOut(t, "show", dir)
	if err != nil || !strings.Contains(out, "owed to OpenMLDB (committed in Kafka, not stored yet): 4 rows") ||
		!strings.Contains(out, "pending (commit sent to Kafka, outcome not read yet): 1 transaction\n") || strings.Contains(out, "set aside") {
		t.Fatalf("show after commit and restore: %q %v; want 1+2+1 rows owed, the restored transaction pending, nothing set aside", out, err)
	}
}
