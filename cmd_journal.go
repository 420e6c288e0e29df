package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

const journalUsage = `usage:
  openmldb-kafka-proxy journal show DIR [--rows]
  openmldb-kafka-proxy journal commit DIR --transactional-id ID [--producer-id N] [--epoch E] [--offset O]
  openmldb-kafka-proxy journal abort DIR --transactional-id ID [--producer-id N] [--epoch E] [--offset O]
  openmldb-kafka-proxy journal restore DIR SET_ASIDE_ID

DIR is the proxy's openmldb.journal_dir. show lists the rows owed to OpenMLDB, the transactions
whose commit outcome the proxy has not read yet, and the rows set aside because their table did not
fit; commit and abort settle a pending transaction whose outcome the proxy cannot read from the log
(its error log says so); restore brings set-aside rows back once their table fits them. With the
proxy running, commit, abort and restore are carried out by it (on DIR/journal.sock); with it
stopped, on the file, and the next start carries them out.`

// journalCmd inspects and settles a journal directory (openmldb.journal_dir).
func journalCmd(args []string) error { return runJournal(args, os.Stdout) }

func runJournal(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, journalUsage)
		if len(args) == 0 {
			return errors.New("journal: name an action: show, commit, abort or restore")
		}
		return nil
	}
	action := args[0]
	operandNames, ok := map[string]string{"show": "DIR", "commit": "DIR", "abort": "DIR", "restore": "DIR SET_ASIDE_ID"}[action]
	if !ok {
		return fmt.Errorf("journal: unknown action %q (want show, commit, abort or restore)", action)
	}
	fs := pflag.NewFlagSet("journal "+action, pflag.ContinueOnError)
	fs.SetNormalizeFunc(config.DashesAsUnderscores)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, journalUsage) }
	rows := fs.Bool("rows", false, "show: print each row as JSON")
	sel := tee.SelectPending("")
	fs.StringVar(&sel.TransactionalID, "transactional-id", "", "commit/abort: the transaction's transactional id")
	fs.Int64Var(&sel.ProducerID, "producer-id", -1, "commit/abort: its producer id, where the transactional id is not enough")
	fs.IntVar(&sel.Epoch, "epoch", -1, "commit/abort: its producer epoch, where the transactional id is not enough")
	fs.Int64Var(&sel.Offset, "offset", -1, "commit/abort: the offset its outcome is read after, where the rest is not enough")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("journal %s: %w", action, err)
	}
	operands := fs.Args()
	if want := len(strings.Fields(operandNames)); len(operands) != want {
		return fmt.Errorf("journal %s: want %s, got %d operand(s)", action, operandNames, len(operands))
	}
	for _, f := range []struct{ name, actions string }{{"rows", "show"}, {"transactional_id", "commit abort"}, {"producer_id", "commit abort"}, {"epoch", "commit abort"}, {"offset", "commit abort"}} {
		if fs.Changed(f.name) && !slices.Contains(strings.Fields(f.actions), action) {
			return fmt.Errorf("journal %s: --%s applies to journal %s only", action, strings.ReplaceAll(f.name, "_", "-"), strings.ReplaceAll(f.actions, " ", " and "))
		}
	}
	dir := operands[0]
	switch action {
	case "show":
		f, err := tee.ReadJournal(dir)
		if err != nil {
			return fmt.Errorf("journal show: %w", err)
		}
		// A running proxy knows which pending transactions it has given up on, and why.
		status, running, err := tee.AskRunningStatus(dir)
		if err != nil {
			fmt.Fprintf(out, "(a proxy holds the journal, but its view is not shown: %v)\n", err)
			running = false // its file is shown as it is
		}
		return printJournal(out, dir, f, journalView{rows: *rows, running: running, status: status})
	case "commit", "abort":
		if sel.TransactionalID == "" {
			return fmt.Errorf("journal %s: --transactional-id is required (journal show %s lists the pending transactions)", action, dir)
		}
		tx, running, err := tee.DecidePending(dir, sel, action == "commit")
		if err != nil {
			return fmt.Errorf("journal %s: %w", action, err)
		}
		outcome := "aborted: its %s are dropped"
		switch {
		case action == "commit" && running:
			outcome = "committed: the running proxy is writing its %s"
		case action == "commit":
			outcome = "committed: its %s are owed to OpenMLDB, and the next start writes them"
		}
		fmt.Fprintf(out, "transaction %q (producer id %d, epoch %d) settled as "+outcome+"\n",
			tx.TransactionalID, tx.ProducerID, tx.Epoch, plural(tee.JournalRows(tx.Groups), "row"))
		return nil
	default: // restore
		a, running, err := tee.RestoreSetAside(dir, operands[1])
		if err != nil {
			return fmt.Errorf("journal restore: %w", err)
		}
		next := "the next start writes them if their tables fit, else sets them aside again"
		if running {
			next = "the running proxy is writing them"
		}
		fmt.Fprintf(out, "restored %s owed and %s set aside under %q; %s\n",
			plural(tee.JournalRows(a.Owed), "row"), plural(len(a.Pending), "pending transaction"), a.ID, next)
		return nil
	}
}

// journalView is how show prints: with rows, and with what the running proxy (if any) says.
type journalView struct {
	rows    bool
	running bool
	status  []tee.PendingStatus
}

// printJournal writes what a journal directory holds, for a person.
func printJournal(w io.Writer, dir string, f tee.JournalFile, v journalView) error {
	var b strings.Builder
	if f.Version == 0 && len(f.SetAside) == 0 {
		fmt.Fprintf(&b, "journal %s: no rows owed, pending or set aside\n", dir)
	} else {
		fmt.Fprintf(&b, "journal %s (version %d)\n", f.Path, f.Version)
	}
	if v.running {
		fmt.Fprintf(&b, "  a proxy is running on it: commit, abort and restore go to it\n")
	}
	if n := tee.JournalRows(f.Owed); n > 0 {
		fmt.Fprintf(&b, "  owed to OpenMLDB (committed in Kafka, not stored yet): %s\n", plural(n, "row"))
		printGroups(&b, "    ", f.Owed, v.rows)
	}
	printPending(&b, "  ", f.Pending, v)
	for _, a := range f.SetAside {
		fmt.Fprintf(&b, "  set aside under %q (journal restore DIR %s, once the tables fit):\n", a.ID, a.ID)
		for _, why := range a.Why {
			fmt.Fprintf(&b, "    why: %s\n", why)
		}
		if n := tee.JournalRows(a.Owed); n > 0 {
			fmt.Fprintf(&b, "    owed: %s\n", plural(n, "row"))
			printGroups(&b, "      ", a.Owed, v.rows)
		}
		printPending(&b, "    ", a.Pending, journalView{rows: v.rows}) // not the running proxy's
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func printPending(b *strings.Builder, indent string, pending []tee.JournalTransaction, v journalView) {
	if len(pending) == 0 {
		return
	}
	fmt.Fprintf(b, "%spending (commit sent to Kafka, outcome not read yet): %s\n", indent, plural(len(pending), "transaction"))
	for _, p := range pending {
		fmt.Fprintf(b, "%s  transactional id %q producer id %d epoch %d offset %d: %s; decided by the first COMMIT or ABORT marker of producer id %d after offset %d of %s partition %d\n",
			indent, p.TransactionalID, p.ProducerID, p.Epoch, p.Offset, plural(tee.JournalRows(p.Groups), "row"), p.ProducerID, p.Offset, p.Topic, p.Partition)
		if v.running {
			i := slices.IndexFunc(v.status, func(s tee.PendingStatus) bool {
				return s.ProducerID == p.ProducerID && s.Epoch == p.Epoch && s.Offset == p.Offset
			})
			switch {
			case i < 0:
				fmt.Fprintf(b, "%s    the running proxy does not list it as undecided: its commit is at the broker (the answer decides it), or it was decided since (run show again)\n", indent)
			case v.status[i].Undecidable != "":
				fmt.Fprintf(b, "%s    the running proxy cannot tell how it ended (%s): settle it with journal commit or abort\n", indent, v.status[i].Undecidable)
			default:
				fmt.Fprintf(b, "%s    the running proxy is reading its outcome (waiting for the marker)\n", indent)
			}
		}
		printGroups(b, indent+"    ", p.Groups, v.rows)
	}
}

// printGroups prints the rows per table (a table's groups counted together), and with rows
// each row.
func printGroups(b *strings.Builder, indent string, groups []tee.JournalGroup, rows bool) {
	var order []string
	count := map[string]int{}
	for _, g := range groups {
		name := g.DB + "." + g.Table
		if _, ok := count[name]; !ok {
			order = append(order, name)
		}
		count[name] += len(g.Rows)
	}
	for _, name := range order {
		fmt.Fprintf(b, "%s%s: %s\n", indent, name, plural(count[name], "row"))
		if !rows {
			continue
		}
		n := 0 // rows are numbered across the table's groups, as they are counted
		for _, g := range groups {
			if g.DB+"."+g.Table != name {
				continue
			}
			for _, raw := range g.Rows {
				n++
				r, err := openmldb.DecodeRow(g.Columns, raw)
				if err != nil {
					fmt.Fprintf(b, "%s  row %d of %d: cannot decode for the columns kept with it: %v\n", indent, n, count[name], err)
					continue
				}
				fmt.Fprintf(b, "%s  %s\n", indent, openmldb.AppendRowJSON(nil, g.Columns, r))
			}
		}
	}
}

// plural is "1 row", "2 rows".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
