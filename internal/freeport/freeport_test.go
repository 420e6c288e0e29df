package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestBlockIsFree(t *testing.T) {
	base, err := Block(4)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
		if err != nil {
			t.Fatalf("port %d of block %d: %v", base+i, base, err)
		}
		l.Close()
	}
}

// Blocks come from below the kernel's ephemeral range, where no outgoing connection's source
// port can take them between the check and the caller's listen.
func TestBlockIsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		base, err := Block(3)
		if err != nil {
			t.Fatal(err)
		}
		if base < lowest || base+2 >= ephemeralLow() {
			t.Fatalf("block %d..%d, want within [%d, %d)", base, base+2, lowest, ephemeralLow())
		}
	}
}
