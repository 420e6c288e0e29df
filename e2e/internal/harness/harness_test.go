package harness

import (
	"os"
	"testing"
)

func TestReadyWriterMatchesWholeWordAcrossWrites(t *testing.T) {
	w := newReadyWriter("ready")
	for _, s := range []string{"level=ERROR msg=\"bind: address already in use\"\n", "level=INFO msg=rea"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-w.ready:
		t.Fatal(`"already" or a partial word counted as ready`)
	default:
	}
	if _, err := w.Write([]byte("dy listen=127.0.0.1:1\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.ready:
	default:
		t.Fatalf("ready line not detected in %q", w.String())
	}
}

func TestProcessCPUTimeOfSelf(t *testing.T) {
	// Burn a little CPU so the 10 ms tick has something to count.
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i
	}
	d, err := ProcessCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Fatalf("CPU time %s after a busy loop (%d)", d, x)
	}
}

func TestSameMultiset(t *testing.T) {
	if ok, d := SameMultiset([]string{"a", "b", "b"}, []string{"b", "a", "b"}); !ok {
		t.Fatalf("same values reported different: %s", d)
	}
	for _, got := range [][]string{{"a", "b"}, {"a", "b", "c"}, {"a", "a", "b"}} {
		if ok, _ := SameMultiset([]string{"a", "b", "b"}, got); ok {
			t.Errorf("%v reported equal to [a b b]", got)
		}
	}
}

func TestRandomBytesDistinctAndSized(t *testing.T) {
	g := NewRandomBytes(1024)
	a, b := g.Value(1), g.Value(2)
	if len(a) != 1024 || len(b) != 1024 || string(a) == string(b) {
		t.Fatalf("values not distinct 1024-byte slices: %d %d", len(a), len(b))
	}
	if string(g.Value(1)) != string(a) {
		t.Fatal("generator is not deterministic")
	}
}

func TestSeedRecordsVaryOnlyC3(t *testing.T) {
	msg := `{"schema":{"type":"struct","fields":[{"type":"int64","optional":true,"field":"c3_int64"}]},"payload":{"c3_int64":3,"c7_string":"c77777"}}` + "\n"
	g, err := NewSeedRecords([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":{"type":"struct","fields":[{"type":"int64","optional":true,"field":"c3_int64"}]},"payload":{"c3_int64":12345,"c7_string":"c77777"}}`
	if got := string(g.Value(12345)); got != want {
		t.Fatalf("Value(12345) = %s, want %s", got, want)
	}
}
