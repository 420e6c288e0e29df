package e2e

import "testing"

// TestAddressCheckCatchesLeaks keeps the address assertion of every client test honest: a leaked
// upstream address, a foreign address and a node at the wrong listener must each be reported.
func TestAddressCheckCatchesLeaks(t *testing.T) {
	t.Parallel()
	if suite.direct {
		t.Skip("direct mode: upstream addresses are the expected ones")
	}
	e := &env{
		bootstrap:  "127.0.0.1:9000",
		advertised: map[int32]string{0: "127.0.0.1:9001", 1: "127.0.0.1:9002"},
		upstream:   map[string]bool{"127.0.0.1:7000": true},
	}
	good := map[int32][]string{-1: {"127.0.0.1:9000", "127.0.0.1:9002"}, 0: {"127.0.0.1:9001"}, 1: {"127.0.0.1:9002"}}
	if p := e.addrProblems("good", good); len(p) != 0 {
		t.Fatalf("proxy addresses reported as problems: %v", p)
	}
	for name, learned := range map[string]map[int32][]string{
		"upstream leak":  {-1: {"127.0.0.1:7000"}},
		"foreign":        {-1: {"10.0.0.1:9092"}},
		"wrong listener": {0: {"127.0.0.1:9002"}},
		"unknown node":   {5: {"127.0.0.1:9001"}},
		"nothing":        {},
	} {
		if p := e.addrProblems(name, learned); len(p) != 1 {
			t.Errorf("%s: got problems %v, want exactly one", name, p)
		}
	}
}
