package tee_test

import (
	"strings"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
)

// The ledger remembers that a batch's invalid records are dead-lettered, so an idempotent
// producer's retry (here: of a batch whose answer was lost) does not produce them again. That
// holds when some record of the batch resolves the sink's table (p.state is set), not for a
// batch whose records all fail before that (here: an int16 out of range, refused by the parser):
// without p.state startStore takes no ledger entry, and the retry dead-letters them again.
// An idempotent producer's retry of a batch does not dead-letter its invalid records again (the
// ledger remembers them), also when every record of the batch is invalid, so that no table was
// resolved for it.
func TestIdempotentRetryDoesNotDeadLetterAgain(t *testing.T) {
	e := startEnv(t, []config.Sink{{Topics: []string{"dlqd"}, AutoCreate: true, OnInvalid: config.OnInvalidDLQ, DLQTopic: "bad"}}, "dlqd", "bad")
	cl := e.client(t)
	if p := produceRaw(t, cl, "dlqd", 0, rawBatch(seedRow(0))); p.ErrorCode != 0 {
		t.Fatalf("creating the table: code %d", p.ErrorCode)
	}
	bad := strings.Replace(seedMessage, `"c1_int16":1`, `"c1_int16":70000`, 1)
	for _, c := range []struct {
		name   string
		pid    int64
		values []string
	}{{"with a valid row", 4000, []string{seedRow(1), bad}}, {"all invalid", 4001, []string{bad}}} {
		before := len(e.topicRecords(t, "bad"))
		batch := rawProducerBatch(c.pid, 0, 0, c.values...)
		for range 2 { // the second is the producer's retry (the broker deduplicates it)
			if p := produceRaw(t, cl, "dlqd", 0, batch); p.ErrorCode != 0 {
				t.Fatalf("%s: code %d", c.name, p.ErrorCode)
			}
		}
		if got := len(e.topicRecords(t, "bad")) - before; got != 1 {
			t.Errorf("batch %s: its invalid record dead-lettered %d times by the batch and its idempotent retry, want once", c.name, got)
		}
	}
}
