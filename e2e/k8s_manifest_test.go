package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
)

// The sidecar manifest's proxy.yaml is a configuration the proxy accepts, and its journal
// directory is on a mounted volume (the root filesystem is read-only there).
func TestSidecarManifestConfigLoads(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("k8s", "sidecar-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := string(b)
	_, rest, ok := strings.Cut(manifest, "  proxy.yaml: |\n")
	if !ok {
		t.Fatal("no proxy.yaml in the ConfigMap")
	}
	var cfg strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		if line == "---" {
			break
		}
		cfg.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load("run", []string{"--config", path}, nil)
	if err != nil {
		t.Fatalf("the manifest's proxy.yaml is refused: %v", err)
	}
	if c.OpenMLDB.JournalDir == "" || !strings.Contains(manifest, "mountPath: "+c.OpenMLDB.JournalDir) {
		t.Fatalf("journal_dir %q is not a mounted volume of the sidecar", c.OpenMLDB.JournalDir)
	}
	if len(c.Sinks) != 1 || c.Sinks[0].Topics[0] != "topic1" {
		t.Fatalf("sinks %+v", c.Sinks)
	}
}
