package tee_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/internal/zktest"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// A row of a table with two indexes is written by one Put per partition its keys hash to. When
// one of them fails and the other stores the row, the producer's idempotent retry must write
// the missing partition only: each index then lists the row once.
func TestIdempotentRetryOfARowStoredInSomePartitionsStoresEachOnce(t *testing.T) {
	ctx, e, tb, id := startSplitSeedTable(t)
	cl := e.client(t)
	batch := rawProducerBatch(4242, 0, 0, seedRow(id))
	e.cluster.FailPuts(1, openmldb.CodePutFailed) // one of the row's two Puts
	p := produceRaw(t, cl, "topic1", 0, batch)
	if p.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code || p.ErrorMessage == nil {
		t.Fatalf("first attempt: code %d, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", p.ErrorCode)
	}
	t.Logf("first attempt: %s", *p.ErrorMessage)
	byID, byString := e.count(t, ctx, tb, 0, strconv.Itoa(id)), e.count(t, ctx, tb, 1, "c77777")
	if byID+byString != 1 {
		t.Fatalf("after the first attempt the row is listed %d times by c3_int64 and %d by c7_string, want once in all", byID, byString)
	}
	if p := produceRaw(t, cl, "topic1", 0, batch); p.ErrorCode != 0 {
		t.Fatalf("retry: code %d (%v)", p.ErrorCode, p.ErrorMessage)
	}
	if byID, byString := e.count(t, ctx, tb, 0, strconv.Itoa(id)), e.count(t, ctx, tb, 1, "c77777"); byID != 1 || byString != 1 {
		t.Fatalf("after the retry the row is listed %d times by c3_int64 and %d by c7_string, want once each", byID, byString)
	}
	if got := len(e.topicRecords(t, "topic1")); got != 1 {
		t.Fatalf("topic holds %d records, want 1 (the broker deduplicates the retry)", got)
	}
}

// The same for a committed transaction's rows, which the proxy writes (and retries) itself.
func TestCommittedRowStoredInSomePartitionsIsCompletedOnce(t *testing.T) {
	ctx, e, tb, id := startSplitSeedTable(t)
	cl := e.client(t, kgo.TransactionalID("partial-app"))
	produceInTxn(t, ctx, cl, id, 1)
	e.cluster.FailPuts(1, 999) // one of the row's two Puts; a code the client's writer does not retry
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if byID, byString := e.count(t, ctx, tb, 0, strconv.Itoa(id)), e.count(t, ctx, tb, 1, "c77777"); byID != 1 || byString != 1 {
		t.Fatalf("after the commit the row is listed %d times by c3_int64 and %d by c7_string, want once each", byID, byString)
	}
}

// startSplitSeedTable starts the proxy with a sink for topic1 on a two-tablet cluster, creates
// kafka_test.topic1 for seed records with two indexes (c3_int64 and c7_string) over 8
// partitions, and returns it with a c3_int64 whose row the two indexes put in different
// partitions (every seed row's c7_string is c77777).
func startSplitSeedTable(t *testing.T) (context.Context, *env, *openmldb.Table, int) {
	t.Helper()
	zk := zktest.StartT(t)
	e := startEnvOn(t, openmldbtest.Options{ZK: zk.Addr, Tablets: 2}, nil,
		[]config.Sink{{Topics: []string{"topic1"}}}, "topic1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	const parts = 8
	tb, err := e.store.CreateTable(ctx, openmldb.TableSpec{DB: "kafka_test", Name: "topic1", Columns: seedTableColumns(),
		Indexes:      []openmldb.Index{{Keys: []string{"c3_int64"}}, {Keys: []string{"c7_string"}}},
		PartitionNum: parts, ReplicaNum: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := 1
	for openmldb.PartitionOf(strconv.Itoa(id), parts) == openmldb.PartitionOf("c77777", parts) {
		id++
	}
	return ctx, e, tb, id
}

// seedTableColumns is the table the seed's Connect schema creates.
func seedTableColumns() []openmldb.Column {
	return []openmldb.Column{
		{Name: "c1_int16", Type: openmldb.TypeSmallInt}, {Name: "c2_int32", Type: openmldb.TypeInt},
		{Name: "c3_int64", Type: openmldb.TypeBigInt}, {Name: "c4_float", Type: openmldb.TypeFloat},
		{Name: "c5_double", Type: openmldb.TypeDouble}, {Name: "c6_boolean", Type: openmldb.TypeBool},
		{Name: "c7_string", Type: openmldb.TypeString}, {Name: "c8_date", Type: openmldb.TypeDate},
		{Name: "c9_timestamp", Type: openmldb.TypeTimestamp},
	}
}

// count counts the rows index idx of tb lists under key.
func (e *env) count(t *testing.T, ctx context.Context, tb *openmldb.Table, idx int, key string) uint64 {
	t.Helper()
	n, err := e.store.Count(ctx, tb, idx, key)
	if err != nil {
		t.Fatalf("count index %d key %q: %v", idx, key, err)
	}
	return n
}
