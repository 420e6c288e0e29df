package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// kcatInvalidRecord is how librdkafka names INVALID_RECORD (87) in kcat's delivery report.
const kcatInvalidRecord = "Broker: Broker failed to validate record"

// invalidCase is one record the tee must refuse before anything reaches the broker or the table.
type invalidCase struct {
	name  string
	topic string
	value string
	// want are substrings of the partition's record_errors message (the field and the reason).
	want []string
}

// TestTeeInvalidRecords sends each kind of invalid record three ways: kcat (exit status 1 and
// librdkafka's INVALID_RECORD text in its delivery report), the franz-go producer
// (kerr.InvalidRecord) and a raw Produce request (error code 87, error_message, and record_errors
// naming the batch index, the field and the reason). After every case the topic, read from the
// brokers directly, and the table, read with `scan`, are still empty.
func TestTeeInvalidRecords(t *testing.T) {
	t.Parallel()
	requireTool(t, "kcat", kcatInstall)
	e := newTeeEnv(t, teeOptions{
		topics:    []string{"inv", "nomissing"},
		tables:    []openmldb.TableSpec{seedTable("inv")},
		sinksYAML: "  - topics: [inv]\n  - topics: [nomissing]\n",
	})
	seed := seedMessage(t)
	edit := func(old, new string) string {
		t.Helper()
		if !strings.Contains(seed, old) {
			t.Fatalf("seed message lacks %q", old)
		}
		return strings.Replace(seed, old, new, 1)
	}
	// A schema that declares c2_int32 required, with a payload that lacks it.
	missingRequired := strings.Replace(edit(`{"type":"int32","optional":true,"field":"c2_int32"}`, `{"type":"int32","optional":false,"field":"c2_int32"}`),
		`"c2_int32":2,`, "", 1)
	extraField := strings.Replace(edit(`"c9_timestamp"}]`, `"c9_timestamp"},{"type":"int32","optional":true,"field":"c10_extra"}]`),
		`"c9_timestamp":1651051906000}`, `"c9_timestamp":1651051906000,"c10_extra":10}`, 1)
	cases := []invalidCase{
		{"not JSON", "inv", "this is not json", []string{"invalid JSON at offset 0"}},
		{"not an envelope", "inv", strings.TrimSuffix(seed, "}") + `,"extra":1}`, []string{`"schema"`, `"payload"`, "additional fields"}},
		{"missing required field", "inv", missingRequired, []string{`"c2_int32"`}},
		{"wrong type", "inv", edit(`"c2_int32":2,`, `"c2_int32":"two",`), []string{`"c2_int32"`}},
		{"fraction into integer", "inv", edit(`"c2_int32":2,`, `"c2_int32":2.5,`), []string{`"c2_int32"`, "2.5"}},
		{"int16 overflow", "inv", edit(`"c1_int16":1,`, `"c1_int16":40000,`), []string{`"c1_int16"`, "40000"}},
		{"date out of range", "inv", edit(`"c8_date":19109,`, `"c8_date":3000000,`), []string{`"c8_date"`, "1900-01-01..9999-12-31"}},
		{"field with no column", "inv", extraField, []string{`"c10_extra"`, "no such column"}},
		{"null into NOT NULL column", "inv", edit(`"c7_string":"c77777",`, `"c7_string":null,`), []string{`"c7_string"`}},
		{"table missing without auto_create", "nomissing", seed, []string{"nomissing", "does not exist"}},
	}
	raw := e.kgoClient(t, "raw")
	ctx := testContext(t, 30*time.Second)
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, raw); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := e.kcatProduce(t, c.topic, c.value+"\n")
			if err == nil {
				t.Errorf("kcat exited 0 for an invalid record; stderr:\n%s", res.Stderr)
			} else if !strings.Contains(res.Stderr, kcatInvalidRecord) {
				t.Errorf("kcat's delivery report lacks %q: %v", kcatInvalidRecord, err)
			}

			prod := e.kgoClient(t, "invalid", kgo.RecordRetries(2))
			pctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err = prod.ProduceSync(pctx, &kgo.Record{Topic: c.topic, Value: []byte(c.value)}).FirstErr()
			cancel()
			if !errors.Is(err, kerr.InvalidRecord) {
				t.Errorf("kgo produce error = %v, want INVALID_RECORD", err)
			}

			p := e.produceRawBatch(t, raw, c.topic, 0, encodeBatch(c.value))
			if p.ErrorCode != kerr.InvalidRecord.Code {
				t.Errorf("raw produce error code %d, want %d (INVALID_RECORD)", p.ErrorCode, kerr.InvalidRecord.Code)
			}
			if p.ErrorMessage == nil || *p.ErrorMessage == "" {
				t.Errorf("raw produce: no error_message")
			}
			if len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != 0 || p.ErrorRecords[0].ErrorMessage == nil {
				t.Errorf("raw produce record_errors = %+v, want one for batch index 0", p.ErrorRecords)
			} else {
				msg := *p.ErrorRecords[0].ErrorMessage
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("record error %q does not mention %q", msg, w)
					}
				}
				t.Logf("record error: %s", msg)
			}

			if got := e.storedValues(t, c.topic); len(got) != 0 {
				t.Errorf("broker stored %d records of topic %s: %q", len(got), c.topic, got)
			}
			if rows := e.scan(t, "inv"); len(rows) != 0 {
				t.Errorf("table inv holds %d rows: %q", len(rows), rows)
			}
		})
	}
	// The table of the sink without auto_create was never created.
	if res, err := e.scanErr("nomissing"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("scan kafka_test.nomissing: err %v, stdout %q; want table not found", err, res.Stdout)
	}
	// A valid record still passes afterwards: the refusals left the partition usable.
	if _, err := e.kcatProduce(t, "inv", seed+"\n"); err != nil {
		t.Fatal(err)
	}
	if got := e.scan(t, "inv"); len(got) != 1 || got[0] != seedRowJSON(3) {
		t.Fatalf("after the invalid cases, scan printed %q, want the seed row", got)
	}
}
