package harness

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
)

// Generator makes the value of the i-th record of a load. Implementations are deterministic so
// a run can be repeated and checked; the benchmark selects one by Name (the tee benchmark adds a
// generator of seed-shaped Kafka Connect JSON records next to these).
type Generator interface {
	// Name identifies the generator on the command line and in reports.
	Name() string
	// Value returns a fresh slice the caller may keep.
	Value(i int) []byte
}

// RandomBytes makes Size-byte values of incompressible pseudo-random bytes whose first 12 bytes
// carry the record index, so batches cost the same with or without compression.
type RandomBytes struct {
	Size  int
	block []byte
}

// NewRandomBytes returns a RandomBytes generator of size-byte values (at least 12).
func NewRandomBytes(size int) *RandomBytes {
	if size < 12 {
		size = 12
	}
	r := rand.New(rand.NewPCG(1, 2))
	block := make([]byte, size)
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	return &RandomBytes{Size: size, block: block}
}

// Name implements Generator.
func (g *RandomBytes) Name() string { return fmt.Sprintf("random%d", g.Size) }

// Value implements Generator.
func (g *RandomBytes) Value(i int) []byte {
	v := make([]byte, g.Size)
	copy(v, g.block)
	copy(v, fmt.Sprintf("r%011d", i))
	return v
}

// Lines returns n distinct, human-readable record values "<prefix>-<i>" for the client tests.
func Lines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// SameMultiset reports whether got holds exactly the values of want (any order, same counts) and
// describes the first difference otherwise. Partitioned topics only keep order per partition, so
// the tests compare contents, not sequence.
func SameMultiset(want, got []string) (bool, string) {
	w := append([]string(nil), want...)
	g := append([]string(nil), got...)
	sort.Strings(w)
	sort.Strings(g)
	if len(w) != len(g) {
		return false, fmt.Sprintf("want %d records, got %d (%s)", len(w), len(g), firstDiff(w, g))
	}
	if d := firstDiff(w, g); d != "" {
		return false, d
	}
	return true, ""
}

func firstDiff(w, g []string) string {
	n := min(len(w), len(g))
	for i := 0; i < n; i++ {
		if w[i] != g[i] {
			return fmt.Sprintf("first difference at sorted index %d: want %q, got %q", i, w[i], g[i])
		}
	}
	if len(w) > n {
		return fmt.Sprintf("missing %q", w[n])
	}
	if len(g) > n {
		return fmt.Sprintf("unexpected %q", g[n])
	}
	return ""
}

// SeedRecords makes Kafka Connect JSON records shaped like the seed guide's message.json, with
// c3_int64 set to the record index so every row is distinct and countable.
type SeedRecords struct {
	prefix, suffix []byte
}

// seedField is the member of the seed message whose value SeedRecords replaces.
const seedField = `"c3_int64":`

// NewSeedRecords splits message (the seed's message.json) around the value of c3_int64.
func NewSeedRecords(message []byte) (*SeedRecords, error) {
	m := bytes.TrimSpace(message)
	i := bytes.Index(m, []byte(`"payload"`))
	if i < 0 {
		return nil, fmt.Errorf("seed message has no payload")
	}
	j := bytes.Index(m[i:], []byte(seedField))
	if j < 0 {
		return nil, fmt.Errorf("seed message payload has no %s", seedField)
	}
	start := i + j + len(seedField)
	end := start
	for end < len(m) && (m[end] == '-' || (m[end] >= '0' && m[end] <= '9')) {
		end++
	}
	if end == start {
		return nil, fmt.Errorf("seed message: %s is not followed by an integer", seedField)
	}
	return &SeedRecords{prefix: bytes.Clone(m[:start]), suffix: bytes.Clone(m[end:])}, nil
}

// Name implements Generator.
func (g *SeedRecords) Name() string { return "seed" }

// Value implements Generator.
func (g *SeedRecords) Value(i int) []byte {
	v := make([]byte, 0, len(g.prefix)+len(g.suffix)+20)
	v = append(v, g.prefix...)
	v = strconv.AppendInt(v, int64(i), 10)
	return append(v, g.suffix...)
}
