package openmldb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGoldenCopyIsCurrent compares testdata/golden with the project's shared/golden when the
// checkout has shared/ beside it (the layout of a development machine and of CI), so the copy the
// tests read cannot drift from the referee.
func TestGoldenCopyIsCurrent(t *testing.T) {
	shared := filepath.Join("..", "..", "shared", "golden")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("no shared/golden beside the checkout (%v): nothing to compare", err)
	}
	for _, name := range []string{"openmldb-rows.jsonl", "openmldb-key-hash.jsonl"} {
		want, err := os.ReadFile(filepath.Join(shared, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/golden/%s differs from shared/golden/%s: copy it again", name, name)
		}
	}
}
