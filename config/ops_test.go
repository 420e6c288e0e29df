package config

import (
	"strings"
	"testing"
	"time"
)

func TestOpsKeys(t *testing.T) {
	c, err := Load("run", []string{"--kafka.bootstrap", "k:9092"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Listen != DefaultAdminListen || c.Admin.Pprof || c.Shutdown.DrainTimeout != DefaultDrainTimeout || c.Log.Payloads {
		t.Errorf("defaults: %+v %+v payloads=%v", c.Admin, c.Shutdown, c.Log.Payloads)
	}
	c, err = Load("run", []string{"--kafka.bootstrap", "k:9092", "--admin.pprof", "--log.payloads"},
		[]string{"OKP_ADMIN__LISTEN=0.0.0.0:19644", "OKP_SHUTDOWN__DRAIN_TIMEOUT=5s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Listen != "0.0.0.0:19644" || !c.Admin.Pprof || c.Shutdown.DrainTimeout != 5*time.Second || !c.Log.Payloads {
		t.Errorf("set: %+v %+v payloads=%v", c.Admin, c.Shutdown, c.Log.Payloads)
	}
	for _, tc := range []struct {
		args []string
		key  string
	}{
		{[]string{"--admin.listen", "nohost"}, "admin.listen:"},
		{[]string{"--admin.listen", "127.0.0.1:9093"}, "admin.listen:"},
		{[]string{"--admin.listen", "", "--admin.pprof"}, "admin.pprof:"},
		{[]string{"--shutdown.drain_timeout", "-1s"}, "shutdown.drain_timeout:"},
	} {
		_, err := Load("run", append([]string{"--kafka.bootstrap", "k:9092"}, tc.args...), nil)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%v: err %v, want one naming %s", tc.args, err, tc.key)
		}
	}
}
