package config

import (
	"reflect"
	"testing"
)

// TestReadmeExampleLoads keeps the README's example configuration honest.
func TestReadmeExampleLoads(t *testing.T) {
	c, err := Load("run", []string{"--config", "testdata/example.yaml"}, []string{"OKP_OPENMLDB__USER=alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Kafka.Bootstrap, []string{"kafka1:9092", "kafka2:9092"}) || c.OpenMLDB.ZKCluster != "zk1:2181" ||
		c.OpenMLDB.Database != "kafka_test" || c.OpenMLDB.User != "alice" {
		t.Fatalf("config %+v", c)
	}
	if len(c.Sinks) != 2 {
		t.Fatalf("sinks %+v", c.Sinks)
	}
	s := c.Sinks[0]
	if !s.AutoCreate || !s.ExactlyOnce || s.PartitionNum != 8 || s.Index.TS != "c9_timestamp" || s.TieOrder != TieOrderOffset ||
		!reflect.DeepEqual(s.Index.Key, []string{"c7_string"}) || s.TableFor("topic1") != "topic1" {
		t.Fatalf("sink 0 %+v", s)
	}
	o := c.Sinks[1]
	if !o.Matches("orders-us") || o.TableFor("orders-eu") != "eu_orders" || o.TableFor("orders-us") != "orders-us" ||
		o.Format != FormatJSON || o.OnInvalid != OnInvalidDLQ || o.DLQTopic != "orders-dlq" || o.TieOrder != TieOrderOffset {
		t.Fatalf("sink 1 %+v", o)
	}
	if SinkFor(c.Sinks, "orders-eu") != &c.Sinks[1] || SinkFor(c.Sinks, "other") != nil {
		t.Fatal("SinkFor routes wrong")
	}
}
