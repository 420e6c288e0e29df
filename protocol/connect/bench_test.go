package connect

import (
	"os"
	"testing"
)

func seedMessage(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/seed_message.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkSeedMessage measures the envelope decode of OpenMLDB's demo message with a warm
// schema cache, the steady state of a topic.
func BenchmarkSeedMessage(b *testing.B) {
	msg := seedMessage(b)
	p := NewParser(0)
	var rec Record
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(msg, &rec); err != nil {
			b.Fatal(err)
		}
	}
}
