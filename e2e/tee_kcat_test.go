package e2e

import (
	"strings"
	"testing"
)

// seedLines is n seed-shaped records (c3_int64 = 0..n-1), one per line for kcat's stdin.
func seedLines(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(seedWithID(t, i))
		b.WriteByte('\n')
	}
	return b.String()
}

// TestTeeKcatCompressed produces 300 repetitive seed-shaped records with kcat in each codec
// through the tee: the broker stores batches of exactly that codec (so the tee really decoded
// compressed batches), and the auto-created table holds every record exactly once.
func TestTeeKcatCompressed(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	codecs := []struct {
		name string
		id   int16
	}{{"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}}
	var topics []string
	for _, c := range codecs {
		topics = append(topics, "z-"+c.name)
	}
	e := newTeeEnv(t, teeOptions{topics: topics, sinksYAML: "  - topics_regex: \"z-.*\"\n    auto_create: true\n"})
	const n = 300
	in := seedLines(t, n)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "z-" + c.name
			// One partition and a linger make few large batches, which librdkafka compresses.
			if _, err := e.kcatProduce(t, topic, in, "-p", "0", "-z", c.name, "-X", "linger.ms=50"); err != nil {
				t.Fatal(err)
			}
			data, _ := dataBatches(e.storedBatches(t, topic))
			if len(data) == 0 {
				t.Fatal("broker stored no batches")
			}
			for _, b := range data {
				if codec := b.Attributes & 0x07; codec != c.id {
					t.Fatalf("stored batch at offset %d (%d records) has codec %d, want %d (%s)", b.FirstOffset, b.NumRecords, codec, c.id, c.name)
				}
			}
			if got := e.storedValues(t, topic); len(got) != n {
				t.Fatalf("topic %s holds %d records, want %d", topic, len(got), n)
			}
			checkIDs(t, "table "+topic, scannedIDs(t, e.scan(t, topic)), n)
		})
	}
}

// TestTeeKcatTransactional produces inside a kcat transaction (committed at EOF): once kcat has
// exited the table holds every record exactly once, and the broker holds transactional batches
// and a commit marker.
func TestTeeKcatTransactional(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newTeeEnv(t, teeOptions{topics: []string{"txn"}, sinksYAML: "  - topics: [txn]\n    auto_create: true\n"})
	const n = 150
	if _, err := e.kcatProduce(t, "txn", seedLines(t, n), "-X", "transactional.id=okp-tee-tx-1"); err != nil {
		t.Fatal(err)
	}
	checkIDs(t, "table txn after commit", scannedIDs(t, e.scan(t, "txn")), n)
	data, control := dataBatches(e.storedBatches(t, "txn"))
	if len(data) == 0 || len(control) == 0 {
		t.Fatalf("broker stored %d data and %d control batches, want both > 0", len(data), len(control))
	}
	for _, b := range data {
		if b.Attributes&0x10 == 0 {
			t.Fatalf("stored batch at offset %d is not transactional (attributes %#x)", b.FirstOffset, b.Attributes)
		}
	}
	if got := e.storedValues(t, "txn"); len(got) != n {
		t.Fatalf("topic txn holds %d records, want %d", len(got), n)
	}
}
