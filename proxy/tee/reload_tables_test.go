package tee_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy/tee"
)

// rowWithC3 is the row of table whose c3_int64 is id.
func rowWithC3(t *testing.T, e *env, table string, id int64) openmldb.Row {
	t.Helper()
	for _, r := range e.tableRows(t, table) {
		if r[2].Valid && r[2].I == id {
			return r
		}
	}
	t.Fatalf("table %s has no row with c3_int64 %d", table, id)
	return nil
}

// A Reload that drops a sink's fields projection writes every field from then on: the
// converter built for the old sink must not be reused (it stored the new records' other fields
// as NULL while the producer heard success).
func TestReloadChangesTheProjection(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true,
		Fields: []string{"c1_int16", "c3_int64", "c9_timestamp"}}}, "topic1")
	cl := e.client(t)
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(1))); p.ErrorCode != 0 {
		t.Fatalf("before the reload: code %d", p.ErrorCode)
	}
	next := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	if err := config.NormalizeSinks(next); err != nil {
		t.Fatal(err)
	}
	if err := e.tee.Reload(next); err != nil {
		t.Fatal(err)
	}
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(2))); p.ErrorCode != 0 {
		t.Fatalf("after the reload: code %d", p.ErrorCode)
	}
	// Read back only now: reading refreshes the catalog, which would rebuild the converter anyway.
	if r := rowWithC3(t, e, "topic1", 2); !r[6].Valid || r[6].S != "c77777" || !r[1].Valid || r[1].I != 2 {
		t.Fatalf("after the reload the row is stored as %+v: the old projection was applied", r)
	}
	if r := rowWithC3(t, e, "topic1", 1); r[6].Valid {
		t.Fatalf("before the reload c7_string was stored as %q though the projection leaves it out", r[6].S)
	}
}

// Two sinks writing one table with different projections each keep their own.
func TestSinksSharingATableKeepTheirProjections(t *testing.T) {
	e := startEnv(t, []config.Sink{
		{Topics: []string{"topic1"}, AutoCreate: true, Table: "shared"},
		{Topics: []string{"topic2"}, AutoCreate: true, Table: "shared", Fields: []string{"c1_int16", "c3_int64", "c9_timestamp"}},
	}, "topic1", "topic2")
	cl := e.client(t)
	for _, c := range []struct {
		topic string
		id    int
	}{{"topic1", 1}, {"topic2", 2}, {"topic1", 3}} {
		if p := produceRaw(t, cl, c.topic, 0, rawBatch(seedRow(c.id))); p.ErrorCode != 0 {
			t.Fatalf("%s: code %d", c.topic, p.ErrorCode)
		}
	}
	for id, whole := range map[int64]bool{1: true, 2: false, 3: true} {
		if r := rowWithC3(t, e, "shared", id); r[6].Valid != whole {
			t.Fatalf("row %d: c7_string stored %v, want %v (its sink's projection)", id, r[6].Valid, whole)
		}
	}
}

// An idempotent batch that failed in part is retried after a Reload mapped its topic to another
// table: the retry is planned against the new table, where none of its rows are, and must write
// them all there (the ledger once said the first attempt's rows were stored, and the producer
// heard success with the new table missing them).
func TestRetryAfterAReloadToAnotherTableWritesTheWholeBatch(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true, TableMap: map[string]string{"topic1": "ta"}}}, "topic1")
	cl := e.client(t)
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating ta: code %d", p.ErrorCode)
	}
	batch := rawProducerBatch(777, 0, 0, seedRow(1), seedRow(2), seedRow(3))
	e.cluster.FailPuts(1, openmldb.CodePutFailed)
	if p := produceRaw(t, cl, "topic1", 0, batch); p.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("first attempt: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", p.ErrorCode)
	}
	next := []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true, TableMap: map[string]string{"topic1": "tb"}}}
	if err := config.NormalizeSinks(next); err != nil {
		t.Fatal(err)
	}
	if err := e.tee.Reload(next); err != nil {
		t.Fatal(err)
	}
	if p := produceRaw(t, cl, "topic1", 0, batch); p.ErrorCode != 0 {
		t.Fatalf("retry: code %d", p.ErrorCode)
	}
	for id := int64(1); id <= 3; id++ {
		rowWithC3(t, e, "tb", id)
	}
}

// Sinks given to New or Reload without config.NormalizeSinks get their defaults (table
// ${topic}, connect-json, reject) instead of failing every record as an outage, and an invalid
// one is refused by name.
func TestSinksAreNormalizedByTheTee(t *testing.T) {
	e := startEnvWith(t, func(o *tee.Options) { o.Sinks = []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}} }, nil, "topic1")
	cl := e.client(t)
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(1))); p.ErrorCode != 0 {
		t.Fatalf("produce through a sink not normalized by the caller: code %d (%v)", p.ErrorCode, p.ErrorMessage)
	}
	rowWithC3(t, e, "topic1", 1)
	if err := e.tee.Reload([]config.Sink{{Topics: []string{"topic1"}, TableMap: map[string]string{"topic1": "other"}, AutoCreate: true}}); err != nil {
		t.Fatal(err)
	}
	if p := produceRaw(t, cl, "topic1", 0, rawBatch(seedRow(2))); p.ErrorCode != 0 {
		t.Fatalf("produce after a reload not normalized by the caller: code %d (%v)", p.ErrorCode, p.ErrorMessage)
	}
	rowWithC3(t, e, "other", 2)
	err := e.tee.Reload([]config.Sink{{Topics: []string{"topic1"}, OnInvalid: config.OnInvalidDLQ}})
	if err == nil || !strings.Contains(err.Error(), "sinks[0].dlq_topic") {
		t.Fatalf("reload of a dlq sink without dlq_topic: %v", err)
	}
}
