package tee

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// SetCommitTimeout shortens how long an EndTxn commit's rows are retried before the client is
// answered, so tests reach the background retry quickly.
func SetCommitTimeout(t *Tee, d time.Duration) { t.commitTimeout = d }

// PlanOnLoopUnchecked plans req as BeginOnLoop does once its checks passed, so a test can give
// it a table that went missing in between.
func PlanOnLoopUnchecked(t *Tee, ctx context.Context, c proxy.ConnInfo, req *kmsg.ProduceRequest) proxy.Step {
	return t.beginProduce(ctx, c, req, t.topicSinks(req), true)
}

// SetStartSkew sets how much later than the tee's start a transaction must have begun to count
// as begun under it (startSkew), so tests need not wait the production margin.
func SetStartSkew(t *Tee, d time.Duration) { t.startSkew = d }

// ForgetOngoingAtStart makes the tee behave as if the transactions open at its start could not
// be listed, so the coordinator's clock decides (the fallback).
func ForgetOngoingAtStart(t *Tee) {
	o := &ongoingAtStart{done: make(chan struct{}), err: errors.New("not listed (test)")}
	close(o.done)
	t.ongoing = o
}
