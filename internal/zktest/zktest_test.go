package zktest

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestStartServesSessions(t *testing.T) {
	s := StartT(t)
	c, ev, err := zk.Connect([]string{s.Addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for e := range ev {
		if e.State == zk.StateHasSession {
			break
		}
	}
	if _, err := c.Create("/probe", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Get("/probe")
	if err != nil || string(b) != "x" {
		t.Fatalf("get /probe = %q, %v", b, err)
	}
}
