package tee

import "time"

// SetCommitTimeout shortens how long an EndTxn commit's rows are retried before the client is
// answered, so tests reach the background retry quickly.
func SetCommitTimeout(t *Tee, d time.Duration) { t.commitTimeout = d }
