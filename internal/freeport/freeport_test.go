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
