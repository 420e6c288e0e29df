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
  openmldb-kafka-proxy journal commit DIR --transactional-id ID [--producer-id N] [--epoch E]
  openmldb-kafka-proxy journal abort DIR --transactional-id ID [--producer-id N] [--epoch E]
  openmldb-kafka-proxy journal restore DIR FILE

DIR is the proxy's openmldb.journal_dir. show lists the rows owed to OpenMLDB, the transactions
whose commit outcome the proxy has not read yet, and the files of rows set aside; commit and abort
settle a pending transaction whose outcome the proxy cannot read from the log (its error log says
so); restore brings a set-aside file's rows back once their table fits them. commit, abort and
restore need the proxy stopped; the next start carries them out.`

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
	operandNames, ok := map[string]string{"show": "DIR", "commit": "DIR", "abort": "DIR", "restore": "DIR FILE"}[action]
	if !ok {
		return fmt.Errorf("journal: unknown action %q (want show, commit, abort or restore)", action)
	}
	fs := pflag.NewFlagSet("journal "+action, pflag.ContinueOnError)
	fs.SetNormalizeFunc(config.DashesAsUnderscores)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, journalUsage) }
	rows := fs.Bool("rows", false, "show: print each row as JSON")
	sel := tee.PendingSelector{}
	fs.StringVar(&sel.TransactionalID, "transactional-id", "", "commit/abort: the transaction's transactional id")
	fs.Int64Var(&sel.ProducerID, "producer-id", -1, "commit/abort: its producer id, where the transactional id is not enough")
	fs.IntVar(&sel.Epoch, "epoch", -1, "commit/abort: its producer epoch, where the transactional id is not enough")
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
	for _, f := range []struct{ name, actions string }{{"rows", "show"}, {"transactional_id", "commit abort"}, {"producer_id", "commit abort"}, {"epoch", "commit abort"}} {
		if fs.Changed(f.name) && !slices.Contains(strings.Fields(f.actions), action) {
			return fmt.Errorf("journal %s: --%s applies to journal %s only", action, strings.ReplaceAll(f.name, "_", "-"), strings.ReplaceAll(f.actions, " ", " and "))
		}
	}
	dir := operands[0]
	switch action {
	case "show":
		c, err := tee.ReadJournal(dir)
		if err != nil {
			return fmt.Errorf("journal show: %w", err)
		}
		return printJournal(out, dir, c, *rows)
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
		f, running, err := tee.RestoreSetAside(dir, operands[1])
		if err != nil {
			return fmt.Errorf("journal restore: %w", err)
		}
		next := "the next start writes them if their tables fit, else sets them aside again"
		if running {
			next = "the running proxy is writing them"
		}
		fmt.Fprintf(out, "restored %s owed and %s from %s; %s\n",
			plural(tee.JournalRows(f.Owed), "row"), plural(len(f.Pending), "pending transaction"), f.Path, next)
		return nil
	}
}

// printJournal writes what a journal directory holds, for a person.
func printJournal(w io.Writer, dir string, c tee.JournalContents, rows bool) error {
	var b strings.Builder
	if c.Journal == nil {
		fmt.Fprintf(&b, "journal %s: no rows owed or pending\n", dir)
	} else {
		printJournalFile(&b, "journal", *c.Journal, rows)
	}
	for _, f := range c.SetAside {
		printJournalFile(&b, "set aside (journal restore DIR FILE brings these back once their table fits)", f, rows)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func printJournalFile(b *strings.Builder, what string, f tee.JournalFile, rows bool) {
	fmt.Fprintf(b, "%s %s (version %d)\n", what, f.Path, f.Version)
	if n := tee.JournalRows(f.Owed); n > 0 {
		fmt.Fprintf(b, "  owed to OpenMLDB (committed in Kafka, not stored yet): %s\n", plural(n, "row"))
		printGroups(b, "    ", f.Owed, rows)
	}
	if len(f.Pending) > 0 {
		fmt.Fprintf(b, "  pending (commit sent to Kafka, outcome not read yet): %s\n", plural(len(f.Pending), "transaction"))
	}
	for _, p := range f.Pending {
		fmt.Fprintf(b, "    transactional id %q producer id %d epoch %d: %s; decided by the first COMMIT or ABORT marker of producer id %d after offset %d of %s partition %d\n",
			p.TransactionalID, p.ProducerID, p.Epoch, plural(tee.JournalRows(p.Groups), "row"), p.ProducerID, p.Offset, p.Topic, p.Partition)
		printGroups(b, "      ", p.Groups, rows)
	}
}

func printGroups(b *strings.Builder, indent string, groups []tee.JournalGroup, rows bool) {
	for _, g := range groups {
		fmt.Fprintf(b, "%s%s.%s: %s\n", indent, g.DB, g.Table, plural(len(g.Rows), "row"))
		if !rows {
			continue
		}
		for i, raw := range g.Rows {
			r, err := openmldb.DecodeRow(g.Columns, raw)
			if err != nil {
				fmt.Fprintf(b, "%s  row %d: cannot decode for the columns kept with it: %v\n", indent, i, err)
				continue
			}
			fmt.Fprintf(b, "%s  %s\n", indent, openmldb.AppendRowJSON(nil, g.Columns, r))
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
