package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestTeeKcatRetriesRowsMissingAfterAppend shows librdkafka (Debian's kcat) retrying the error the
// tee answers when the broker appended a batch but OpenMLDB did not store its rows
// (NOT_ENOUGH_REPLICAS_AFTER_APPEND): the first Puts fail, kcat retries on its own and exits 0.
// With idempotence the broker deduplicates the retry and the ledger writes only what is missing,
// so topic and table both hold each record once; without it the retry appends the batch again
// (at-least-once in Kafka) while the table still holds each row once.
func TestTeeKcatRetriesRowsMissingAfterAppend(t *testing.T) {
	t.Parallel()
	e := newTeeEnv(t, teeOptions{topics: []string{"topic1"}, sinksYAML: "  - topics: [topic1]\n    auto_create: true\n"})
	// The first record creates the table, so the injected failures hit row writes.
	if _, err := e.kcatProduce(t, "topic1", seedWithID(t, 0)+"\n"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		id     int
		extra  []string
		copies int // records of this id in the topic afterwards
	}{
		{"idempotent", 1, []string{"-X", "enable.idempotence=true"}, 1},
		{"plain", 2, nil, 2},
	}
	for _, c := range cases {
		e.om.FailPuts(1, 116) // kPutFailed on the next Put: the partition's row is not stored
		res, err := e.kcatProduce(t, "topic1", seedWithID(t, c.id)+"\n", c.extra...)
		if err != nil {
			t.Fatalf("%s: kcat did not retry to success: %v\n%s", c.name, err, res.Stderr)
		}
		n := 0
		for _, v := range e.storedValues(t, "topic1") {
			if strings.Contains(v, fmt.Sprintf(`"c3_int64":%d,`, c.id)) {
				n++
			}
		}
		if n != c.copies {
			t.Fatalf("%s: topic holds %d copies of record %d, want %d", c.name, n, c.id, c.copies)
		}
	}
	checkIDs(t, "table after retries", scannedIDs(t, e.scan(t, "topic1")), 3)
}
