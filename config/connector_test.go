package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSeedConnectorProperties(t *testing.T) {
	imp, err := LoadConnectorProperties("testdata/openmldb-sink.properties")
	if err != nil {
		t.Fatal(err)
	}
	want := OpenMLDB{ZKCluster: "127.0.0.1:2181", ZKPath: "/openmldb", Database: "kafka_test"}
	if imp.OpenMLDB != want {
		t.Fatalf("openmldb = %+v, want %+v", imp.OpenMLDB, want)
	}
	s := imp.Sink
	if !reflect.DeepEqual(s.Topics, []string{"topic1"}) || !s.AutoCreate || s.TableFor("topic1") != "topic1" ||
		s.Format != FormatConnectJSON || s.OnInvalid != OnInvalidReject {
		t.Fatalf("sink = %+v", s)
	}
	if len(imp.Ignored) != 0 {
		t.Fatalf("ignored = %v, want none (name, connector.class, tasks.max are inert)", imp.Ignored)
	}
}

func writeProps(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sink.properties")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConnectorPropertiesTranslation(t *testing.T) {
	p := writeProps(t, `connection.url=jdbc:openmldb:///db1?zk=zk1:2181,zk2:2181&zkPath=/om
topics.regex=orders-.*
table.name.format=t_${topic}
topic.table.mapping=orders-eu:eu_orders
fields.whitelist=a, b
errors.tolerance=all
errors.deadletterqueue.topic.name=bad
batch.size=3000
max.retries=5
pk.mode=none
value.converter.schemas.enable=false
`)
	imp, err := LoadConnectorProperties(p)
	if err != nil {
		t.Fatal(err)
	}
	s := imp.Sink
	if imp.OpenMLDB.ZKCluster != "zk1:2181,zk2:2181" || imp.OpenMLDB.ZKPath != "/om" || imp.OpenMLDB.Database != "db1" {
		t.Fatalf("openmldb = %+v", imp.OpenMLDB)
	}
	if !s.Matches("orders-us") || s.Matches("xorders-us") || s.TableFor("orders-us") != "t_orders-us" || s.TableFor("orders-eu") != "eu_orders" {
		t.Fatalf("routing wrong: %+v", s)
	}
	if s.OnInvalid != OnInvalidDLQ || s.DLQTopic != "bad" || s.Format != FormatJSON || !reflect.DeepEqual(s.Fields, []string{"a", "b"}) {
		t.Fatalf("sink = %+v", s)
	}
	if !reflect.DeepEqual(imp.Ignored, []string{"batch.size", "max.retries"}) {
		t.Fatalf("ignored = %v", imp.Ignored)
	}
}

func TestConnectorPropertiesErrors(t *testing.T) {
	base := "connection.url=jdbc:openmldb:///db?zk=h:1\n"
	cases := map[string]string{
		base + "topics=a\ntopics.regex=b\n":                                         "topics and topics.regex are both set",
		base + "topics=a\npk.mode=record_value\n":                                   "pk.mode=record_value: primary keys are unsupported",
		base + "topics=a\nerrors.deadletterqueue.topic.name=dlq\n":                  "a dead-letter queue needs errors.tolerance=all",
		base + "topics=a\nauto.create=yes\n":                                        `auto.create: "yes" is not true or false`,
		"topics=a\n":                                                                "connection.url: required",
		"connection.url=jdbc:mysql://h/db\ntopics=a\n":                              "does not start with jdbc:openmldb:",
		"connection.url=jdbc:openmldb:///db\ntopics=a\n":                            "neither zk=HOST:PORT nor nameserver=HOST:PORT",
		base + "topics=a\ntopic.table.mapping=nocolon\n":                            `"nocolon" is not topic:table`,
		base + "topics=a\nvalue.converter=io.confluent.AvroConv\n":                  "only org.apache.kafka.connect.json.JsonConverter",
		base + "topics=a\nauto.create=true\nvalue.converter.schemas.enable=false\n": "carries no column types",
	}
	for body, want := range cases {
		_, err := LoadConnectorProperties(writeProps(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to contain %q", body, err, want)
		}
	}
}

func TestSinkValidation(t *testing.T) {
	cases := []struct {
		sinks []Sink
		want  string
	}{
		{[]Sink{{}}, "sinks[0]: set topics"},
		{[]Sink{{Topics: []string{"a"}, OnInvalid: "drop"}}, `sinks[0].on_invalid: "drop" is not one of`},
		{[]Sink{{Topics: []string{"a"}, OnInvalid: "dlq"}}, "sinks[0].dlq_topic: required"},
		{[]Sink{{Topics: []string{"a"}}, {Topics: []string{"a"}}}, `sinks[1].topics: topic "a" is already teed by sinks[0]`},
		{[]Sink{{Topics: []string{"a"}, Index: Index{TTL: "3h"}}}, "sinks[0].index.ttl"},
		{[]Sink{{TopicsRegex: "("}}, "sinks[0].topics_regex"},
		{[]Sink{{Topics: []string{"a"}, TieOrder: "strict"}}, `sinks[0].tie_order: "strict" is not one of offset, any`},
	}
	for _, c := range cases {
		err := NormalizeSinks(c.sinks)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.sinks, err, c.want)
		}
	}
	ttl, err := ParseTTL("1440m")
	if err != nil || ttl.AbsMinutes != 1440 {
		t.Fatalf("ParseTTL(1440m) = %+v, %v", ttl, err)
	}
}

func TestConnectorConfigFlagBothSpellings(t *testing.T) {
	for _, flag := range []string{"--connector-config", "--connector_config"} {
		c, err := Load("run", []string{"--kafka.bootstrap", "k:9092", flag, "testdata/openmldb-sink.properties"}, nil)
		if err != nil {
			t.Fatalf("%s: %v", flag, err)
		}
		if len(c.Sinks) != 1 || c.OpenMLDB.ZKCluster != "127.0.0.1:2181" || c.OpenMLDB.Database != "kafka_test" {
			t.Fatalf("%s: sinks %+v openmldb %+v", flag, c.Sinks, c.OpenMLDB)
		}
	}
}

// A misspelled key is still listed with the keys that do nothing here, but says which key it
// is close to; a bad topics.regex is quoted as written, naming the connector key too.
func TestConnectorTyposAndBadRegexAreNamed(t *testing.T) {
	imp, err := LoadConnectorProperties(writeProps(t, "connection.url=jdbc:openmldb:///db1?zk=zk:2181&zkPath=/om\ntopics=t\nauto.creat=true\nbatch.size=10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(imp.Ignored, []string{"auto.creat (did you mean auto.create?)", "batch.size"}) {
		t.Fatalf("ignored = %v", imp.Ignored)
	}
	imp, err = LoadConnectorProperties(writeProps(t, "connection.url=jdbc:openmldb:///db1?zk=zk:2181&zkpath=/om&sessionTimeout=5000\ntopics=t\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(imp.Ignored, []string{"connection.url parameter sessionTimeout", "connection.url parameter zkpath (did you mean zkPath?)"}) || imp.OpenMLDB.ZKPath != "/openmldb" {
		t.Fatalf("ignored = %v, zk path %q", imp.Ignored, imp.OpenMLDB.ZKPath)
	}
	imp, err = LoadConnectorProperties(writeProps(t, "connection.url=jdbc:openmldb:///db1?zk=zk:2181&user=u1&password=p1\ntopics=t\n"))
	if err != nil || imp.OpenMLDB.User != "u1" || imp.OpenMLDB.Password != "p1" || len(imp.Ignored) != 0 {
		t.Fatalf("credentials in the URL: %+v, ignored %v (%v)", imp.OpenMLDB, imp.Ignored, err)
	}
	imp, err = LoadConnectorProperties(writeProps(t, "connection.url=jdbc:openmldb:///db1?zk=zk:2181&user=u1\nconnection.user=u2\ntopics=t\n"))
	if err != nil || imp.OpenMLDB.User != "u2" {
		t.Fatalf("connection.user after a URL user: %+v (%v)", imp.OpenMLDB, err)
	}
	_, err = LoadConnectorProperties(writeProps(t, "connection.url=jdbc:openmldb:///db1?zk=zk:2181&zkPath=/om\ntopics.regex=orders-[\n"))
	if err == nil || !strings.Contains(err.Error(), `"orders-["`) || !strings.Contains(err.Error(), "topics.regex") || strings.Contains(err.Error(), ")$") {
		t.Fatalf("bad regex: %v", err)
	}
}
