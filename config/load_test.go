package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDefaultsAndRequired(t *testing.T) {
	_, err := Load("run", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "kafka.bootstrap: required, a comma-separated list of host:port") {
		t.Fatalf("err = %v", err)
	}
	c, err := Load("run", []string{"--kafka.bootstrap", "127.0.0.1:9092,127.0.0.1:9192"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9093" || c.AdvertisedHost != "127.0.0.1" || c.MaxFrameBytes != 100<<20 ||
		c.Log.Level != "info" || c.Log.Format != "text" || len(c.BrokerPorts) != 0 {
		t.Fatalf("defaults %+v", c)
	}
	if len(c.Kafka.Bootstrap) != 2 || c.Kafka.Bootstrap[1] != "127.0.0.1:9192" {
		t.Fatalf("bootstrap %v", c.Kafka.Bootstrap)
	}
}

// File < environment < flags, and list and map forms of broker_ports.
func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.yaml")
	yaml := `listen: 127.0.0.1:7000
advertised_host: proxy.example
kafka:
  bootstrap: [a:1, b:2]
broker_ports:
  0: 7100
  2: 7102
max_frame_bytes: 2048
log:
  level: debug
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("run", []string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7000" || c.AdvertisedHost != "proxy.example" || c.MaxFrameBytes != 2048 ||
		c.Log.Level != "debug" || c.BrokerPorts[0] != 7100 || c.BrokerPorts[2] != 7102 || len(c.Kafka.Bootstrap) != 2 {
		t.Fatalf("file %+v", c)
	}
	env := []string{"OKP_KAFKA__BOOTSTRAP=c:3, d:4", "OKP_MAX_FRAME_BYTES=4096", "OKP_BROKER_PORTS=1=7201", "OTHER_X=1"}
	c, err = Load("run", []string{"--config", path}, env)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Bootstrap, ",") != "c:3,d:4" || c.MaxFrameBytes != 4096 || len(c.BrokerPorts) != 1 || c.BrokerPorts[1] != 7201 {
		t.Fatalf("env %+v", c)
	}
	c, err = Load("run", []string{"--config", path, "--max_frame_bytes", "8192", "--broker_ports", "0=7300,1=7301",
		"--kafka.bootstrap", "e:5", "--log.level", "warn"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Bootstrap, ",") != "e:5" || c.MaxFrameBytes != 8192 || c.BrokerPorts[0] != 7300 ||
		c.BrokerPorts[1] != 7301 || c.Log.Level != "warn" || c.Listen != "127.0.0.1:7000" {
		t.Fatalf("flags %+v", c)
	}
}

func TestLoadValidationNamesKey(t *testing.T) {
	for args, want := range map[string]string{
		"--kafka.bootstrap=nohost":                   `kafka.bootstrap: "nohost" is not host:port`,
		"--kafka.bootstrap=a:1 --listen=x":           `listen: "x" is not host:port`,
		"--kafka.bootstrap=a:1 --listen=0.0.0.0:9":   "advertised_host: required",
		"--kafka.bootstrap=a:1 --max_frame_bytes=10": "max_frame_bytes: 10 is below",
		"--kafka.bootstrap=a:1 --log.level=loud":     `log.level: "loud"`,
		"--kafka.bootstrap=a:1 --log.format=xml":     `log.format: "xml"`,
		"--kafka.bootstrap=a:1 --broker_ports=7":     `broker_ports: "7" is not node_id=port`,
		"--kafka.bootstrap=a:1 --broker_ports=0=0":   "broker_ports: port",
		"--kafka.bootstrap=a:1 --broker_ports=x=1":   "broker_ports: node id",
	} {
		_, err := Load("run", strings.Fields(args), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", args, err, want)
		}
	}
}

// A key that names no setting is refused with the key (and the setting it is closest to), from
// the file and from the environment alike: a misspelled "sinkz" used to start a proxy that
// tees nothing. So is a duration without a unit, which YAML hands over as a number (30 ns).
func TestLoadRefusesUnknownKeysAndDurationsWithoutUnit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, yaml string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	base := "kafka:\n  bootstrap: [a:1]\nopenmldb:\n  nameserver: ns:1\n  database: db\n"
	for _, c := range []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{"top level", base + "sinkz:\n  - topics: [t]\n", nil, []string{"unknown keys", "sinkz (did you mean sinks?)"}},
		{"in a sink", base + "sinks:\n  - topics: [t]\n    auto_creat: true\n", nil, []string{"sinks[0].auto_creat (did you mean auto_create?)"}},
		{"nested", base + "kafka_x: 1\nlimits:\n  max_conections: 5\n", nil, []string{"kafka_x", "limits.max_conections (did you mean max_connections?)"}},
		{"environment", base, []string{"OKP_OPENMLDB__PASWORD=x"}, []string{"openmldb.pasword (did you mean password?)"}},
		{"duration without unit", base + "shutdown:\n  drain_timeout: 30\n", nil, []string{"shutdown.drain_timeout", "a duration needs a unit, like \"30s\""}},
	} {
		_, err := Load("run", []string{"--config", write(strings.ReplaceAll(c.name, " ", "_")+".yaml", c.yaml)}, c.env)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	if _, err := Load("run", []string{"--config", write("ok.yaml", base+"shutdown:\n  drain_timeout: 30s\nbroker_ports:\n  0: 7100\n")}, nil); err != nil {
		t.Errorf("a valid file: %v", err)
	}
}
