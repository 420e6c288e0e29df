package zktest

import (
	"slices"
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

// TestRestartExpiresSessions restarts the server with a downtime longer than the session
// timeout: persistent znodes survive on the same address, the session expires (its ephemeral
// node is gone) and the client gets a new session.
func TestRestartExpiresSessions(t *testing.T) {
	s := StartT(t)
	c, ev, err := zk.Connect([]string{s.Addr}, 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	states := make(chan zk.State, 100)
	go func() {
		for e := range ev {
			if e.Type == zk.EventSession {
				states <- e.State
			}
		}
		close(states)
	}()
	for st := range states {
		if st == zk.StateHasSession {
			break
		}
	}
	if _, err := c.Create("/keep", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/eph", []byte("x"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(7 * time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	var seen []zk.State
wait:
	for {
		select {
		case st := <-states:
			seen = append(seen, st)
			if st == zk.StateHasSession {
				break wait
			}
		case <-deadline:
			t.Fatalf("no session after restart; states %v", seen)
		}
	}
	b, _, err := c.Get("/keep")
	if err != nil || string(b) != "x" {
		t.Fatalf("get /keep after restart = %q, %v", b, err)
	}
	if !slices.Contains(seen, zk.StateExpired) {
		t.Fatalf("session did not expire; states %v", seen)
	}
	if ok, _, err := c.Exists("/eph"); err != nil || ok {
		t.Fatalf("ephemeral of the expired session: exists %v, %v", ok, err)
	}
}
