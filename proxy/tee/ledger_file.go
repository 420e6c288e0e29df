package tee

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// ledgerFile keeps, across a graceful restart, the ledger's batches that an attempt wrote in
// part: the producer was answered with an error, and its retry may reach the next process, which
// without them would write every row of the batch again. It lives in the journal directory
// (whose lock guards it), is written when the tee closes and removed once a start has read it: a
// crash loses it, and the retries then write their rows again, as without a journal.
const ledgerFile = "idempotent-batches.json"

// ledgerDoc is the file's content.
type ledgerDoc struct {
	Version int            `json:"version"`
	Batches []ledgerRecord `json:"batches"`
}

// ledgerRecord is one batch's progress.
type ledgerRecord struct {
	ProducerID   int64            `json:"producer_id"`
	Epoch        int16            `json:"epoch"`
	Topic        string           `json:"topic"`
	Partition    int32            `json:"partition"`
	TID          uint32           `json:"tid"`
	BaseSequence int32            `json:"base_sequence"`
	Rows         int              `json:"rows"`
	Stored       []int            `json:"stored,omitempty"` // rows in every partition
	Parts        map[int][]uint32 `json:"stored_partitions,omitempty"`
	DeadLettered bool             `json:"dead_lettered,omitempty"`
	// Lettered lists, while not DeadLettered, the invalid records (by index in the partition)
	// already in the dead-letter topic. Releases before it ignore the field (and produce those
	// dead letters again) but keep the rest of the file, so the file stays at version 1.
	Lettered []int `json:"dead_lettered_records,omitempty"`
}

// unfinished returns the batches whose rows are stored in part (or whose invalid records were
// dead-lettered while rows are missing): the ones a retry would otherwise partly repeat.
func (l *ledger) unfinished() []ledgerRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ledgerRecord
	// Oldest first, so that restoring them in order leaves the most recent at the front.
	for el := l.lru.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*ledgerEntry)
		for _, b := range e.batches {
			r := ledgerRecord{ProducerID: e.key.producerID, Epoch: e.key.epoch, Topic: e.key.topic, Partition: e.key.partition,
				TID: e.key.tid, BaseSequence: b.baseSequence, Rows: len(b.stored), DeadLettered: b.deadLettered,
				Lettered: slices.Clone(b.lettered)}
			for i, ok := range b.stored {
				if ok {
					r.Stored = append(r.Stored, i)
				}
			}
			for i, p := range b.parts {
				if r.Parts == nil {
					r.Parts = map[int][]uint32{}
				}
				r.Parts[i] = slices.Clone(p)
			}
			whole := len(r.Stored) == r.Rows && r.Lettered == nil // (Lettered is nil once DeadLettered)
			if whole || (len(r.Stored) == 0 && r.Parts == nil && !r.DeadLettered && r.Lettered == nil) {
				continue // whole, or nothing done: a retry needs no record of it
			}
			out = append(out, r)
		}
	}
	return out
}

// restore adds batches read back from the file; a record that does not fit (rows out of range)
// is skipped and reported.
func (l *ledger) restore(recs []ledgerRecord) (skipped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		if r.Rows < 0 || r.Rows > maxLedgerRows || !validRows(r) {
			skipped++
			continue
		}
		key := producerPartition{producerID: r.ProducerID, epoch: r.Epoch, topic: r.Topic, partition: r.Partition, tid: r.TID}
		b := l.batch(key, r.BaseSequence, r.Rows)
		for _, i := range r.Stored {
			b.stored[i] = true
		}
		for i, p := range r.Parts {
			if b.parts == nil {
				b.parts = map[int][]uint32{}
			}
			b.parts[i] = slices.Clone(p)
		}
		l.rows += b.addLettered(batchDone{deadLettered: r.DeadLettered, lettered: r.Lettered})
	}
	return skipped
}

// maxLedgerRows bounds a restored batch: Kafka batches are bounded by the broker's message size,
// and a corrupt count must not allocate without limit.
const maxLedgerRows = 1 << 22

func validRows(r ledgerRecord) bool {
	for _, i := range r.Stored {
		if i < 0 || i >= r.Rows {
			return false
		}
	}
	for i := range r.Parts {
		if i < 0 || i >= r.Rows {
			return false
		}
	}
	return true
}

// saveLedger writes recs to dir's ledger file (none: the file is removed).
func saveLedger(dir string, recs []ledgerRecord) error {
	if len(recs) == 0 {
		if err := os.Remove(filepath.Join(dir, ledgerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ledger: %w", err)
		}
		return nil
	}
	// Version 1 even with Lettered (see ledgerRecord); version 2, which one build wrote for
	// files with Lettered, is still read.
	b, err := json.Marshal(ledgerDoc{Version: 1, Batches: recs})
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return writeFileSynced(dir, ledgerFile, b)
}

// takeLedger reads dir's ledger file and removes it (no file: none).
func takeLedger(dir string) ([]ledgerRecord, error) {
	path := filepath.Join(dir, ledgerFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	var doc ledgerDoc
	err = json.Unmarshal(b, &doc)
	if err == nil && doc.Version != 1 && doc.Version != 2 {
		err = fmt.Errorf("version %d, this release reads 1 and 2", doc.Version)
	}
	if rerr := os.Remove(path); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	return doc.Batches, nil
}
