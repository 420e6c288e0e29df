package tee

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// A running proxy owns its journal file: it rewrites it from memory at every change, so an edit
// of the file would be undone. It takes the journal command's changes instead on a Unix socket
// in the journal directory, which only the directory's owner can reach (no network exposure, no
// setting): `kubectl exec` into a sidecar, or a shell next to the process, settles a transaction
// without stopping the proxy. One JSON request line, one JSON answer line per connection.

// socketName is the Unix socket in the journal directory.
const socketName = "journal.sock"

// requestTimeout bounds reading a request and writing its answer; a client that sends nothing
// holds the socket no longer than that (requests are served one at a time), and Close cuts it off.
const requestTimeout = 5 * time.Second

// maxRequestBytes bounds a request line.
const maxRequestBytes = 64 << 10

// journalRequest is a change asked of the running proxy.
type journalRequest struct {
	Action          string `json:"action"` // "commit", "abort", "restore" or "status"
	TransactionalID string `json:"transactional_id,omitempty"`
	ProducerID      int64  `json:"producer_id"`
	Epoch           int    `json:"epoch"`
	Offset          int64  `json:"offset"`
	ID              string `json:"id,omitempty"` // restore: what the rows are set aside under
}

// journalAnswer is the running proxy's answer.
type journalAnswer struct {
	Error       string           `json:"error,omitempty"`
	Transaction *journalPending  `json:"transaction,omitempty"` // commit, abort (rows included)
	Restored    *journalSetAside `json:"restored,omitempty"`
	Status      []PendingStatus  `json:"status,omitempty"` // status: the commits whose answer will never come here
}

// PendingStatus is what a running proxy says of a pending transaction whose commit answer it
// will never see: Undecidable says why its marker cannot be read once the marker reader has
// given up on it ("" while it reads).
type PendingStatus struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	Epoch           int16  `json:"epoch"`
	Offset          int64  `json:"offset"`
	Undecidable     string `json:"undecidable,omitempty"`
}

// AskRunningStatus asks the proxy running on dir, if any, about its pending transactions whose
// commit answer it will never see. The directory's lock says whether a proxy runs (a killed
// one's socket is left behind); running is true with an error when one holds the lock but does
// not answer on the socket (starting, stopping, or unable to listen).
func AskRunningStatus(dir string) (status []PendingStatus, running bool, err error) {
	j := &journal{dir: dir}
	if err := j.lockShared(); err == nil {
		j.unlock()
		return nil, false, nil
	} else if !errors.Is(err, ErrJournalInUse) {
		return nil, false, err
	}
	ans, err := askRunning(dir, journalRequest{Action: "status"})
	if err != nil {
		return nil, true, err
	}
	return ans.Status, true, nil
}

// listenJournal starts taking changes on the socket; a proxy that cannot listen (a directory path
// too long for a socket address) still runs, and says so.
func (t *Tee) listenJournal() {
	path := filepath.Join(t.journal.dir, socketName)
	fail := func(err error) {
		t.log.Warn("the journal command cannot reach this proxy; stop it to settle transactions or restore rows", "socket", path, "err", err)
	}
	// Bound under a temporary name and made private before it takes the socket's name, so no
	// other user can connect in between, whatever the umask and the directory's mode.
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		fail(err)
		return
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // its name changes; Close removes the socket
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		fail(err)
		return
	}
	// Over a crashed run's socket, if any: the directory's lock is this process's now.
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		fail(err)
		return
	}
	t.journalLn = ln
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return // by Close
			}
			if err != nil {
				if ok, _ := t.logLimit.Allow("journal socket"); ok {
					t.log.Error("journal socket: accept failed; trying again", "socket", path, "err", err)
				}
				select {
				case <-t.closed:
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			t.serveJournalConn(c)
		}
	}()
}

// closeJournalSocket stops taking changes: the listener, a request being read (Close must not
// wait for a client that sends nothing), and the socket's name.
func (t *Tee) closeJournalSocket() {
	if t.journalLn == nil {
		return
	}
	t.journalLn.Close()
	t.journalConnMu.Lock()
	t.journalClosing = true // a connection accepted just before is not served
	if t.journalConn != nil {
		t.journalConn.Close()
	}
	t.journalConnMu.Unlock()
	os.Remove(filepath.Join(t.journal.dir, socketName))
}

// serveJournalConn answers one request. Requests are served one at a time: they are rare, and
// each is short.
func (t *Tee) serveJournalConn(c net.Conn) {
	t.journalConnMu.Lock()
	if t.journalClosing {
		t.journalConnMu.Unlock()
		c.Close()
		return
	}
	t.journalConn = c
	t.journalConnMu.Unlock()
	defer func() {
		t.journalConnMu.Lock()
		t.journalConn = nil
		t.journalConnMu.Unlock()
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(requestTimeout))
	var req journalRequest
	line, err := bufio.NewReader(io.LimitReader(c, maxRequestBytes)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var ans journalAnswer
	switch {
	case err != nil:
		ans.Error = fmt.Sprintf("unreadable request: %v", err)
	case req.Action == "commit" || req.Action == "abort":
		jp, err := t.settle(PendingSelector{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.Epoch, Offset: req.Offset}, req.Action == "commit")
		if err != nil {
			ans.Error = err.Error()
		} else {
			ans.Transaction = &jp
		}
	case req.Action == "status":
		for _, v := range t.txns.loadedViews() {
			ans.Status = append(ans.Status, PendingStatus{TransactionalID: v.desc.TransactionalID, ProducerID: v.desc.ProducerID,
				Epoch: v.desc.Epoch, Offset: v.desc.Offset, Undecidable: v.undecidable})
		}
	case req.Action == "restore":
		a, err := t.restore(req.ID)
		if err != nil {
			ans.Error = err.Error()
		} else {
			ans.Restored = a
		}
	default:
		ans.Error = fmt.Sprintf("unknown action %q", req.Action)
	}
	b, _ := json.Marshal(ans) // plain structs: cannot fail
	c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := c.Write(append(b, '\n')); err != nil {
		// The change, if any, is made; the client is told to look.
		t.log.Warn("journal socket: the answer could not be sent", "err", err)
	}
}

// askRunning sends req to the proxy that holds dir, for when the directory is in use.
func askRunning(dir string, req journalRequest) (journalAnswer, error) {
	var ans journalAnswer
	path := filepath.Join(dir, socketName)
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return ans, fmt.Errorf("a proxy holds journal %s (%w), and it does not take changes on %s (%w): it may be starting or stopping (retry), run as another user, or be of a release without the socket (stop it first)",
			dir, ErrJournalInUse, path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(requestTimeout + 30*time.Second)) // the change itself may take a while (restore reads OpenMLDB's tables)
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return ans, fmt.Errorf("journal socket %s: %w", path, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &ans)
	}
	if err != nil {
		return ans, fmt.Errorf("journal socket %s: no answer (%w); run journal show to see whether the change was made", path, err)
	}
	if ans.Error != "" {
		return ans, fmt.Errorf("the running proxy: %s", ans.Error)
	}
	return ans, nil
}

// settle decides, in this running proxy, the pending commit sel picks among those whose answer
// will never come here, once the marker reader has given up on it: committed rows are written
// now, aborted ones dropped, and the journal rewritten.
func (t *Tee) settle(sel PendingSelector, committed bool) (journalPending, error) {
	views := t.txns.loadedViews()
	all := make([]journalPending, len(views))
	for i, v := range views {
		all[i] = v.desc
	}
	i, err := sel.pick(all, "whose commit answer this proxy cannot see (a commit still at the broker is decided by its answer)")
	if err != nil {
		return journalPending{}, err
	}
	v := views[i]
	if v.undecidable == "" {
		return journalPending{}, fmt.Errorf("the outcome of transaction %q is still being read from %s partition %d after offset %d (its marker decides it; the proxy's log says what it waits for); settle it only once the proxy reports that it cannot tell",
			v.desc.TransactionalID, v.desc.Topic, v.desc.Partition, v.desc.Offset)
	}
	keys, ok := t.txns.resolve(v.pc, committed)
	if !ok {
		return journalPending{}, fmt.Errorf("transaction %q was decided meanwhile", v.desc.TransactionalID)
	}
	outcome := "aborted; its rows are dropped"
	if committed {
		outcome = "committed; writing its rows"
	}
	t.log.Warn("an operator settled a transaction whose outcome the proxy could not read: "+outcome, "transactional_id", v.desc.TransactionalID,
		"producer_id", v.desc.ProducerID, "epoch", v.desc.Epoch, "rows", countRows(v.pc.groups), "why_undecided", v.undecidable)
	jp := v.desc
	jp.Groups, _ = encodeJournalGroups(v.pc.groups)
	err = t.saveJournal()
	for _, k := range keys {
		t.retryCommitted(k, v.desc.TransactionalID)
	}
	if err != nil {
		return jp, fmt.Errorf("settled, but the journal could not be rewritten (the proxy retries): %w", err)
	}
	return jp, nil
}

// restore takes the rows set aside under id into this running proxy: owed rows are written,
// pending transactions have their marker read. Every group must fit its table now, and the
// journal must take the change, or nothing is taken.
func (t *Tee) restore(id string) (*journalSetAside, error) {
	j := t.journal
	j.mu.Lock()
	i := slices.IndexFunc(j.asides, func(a journalSetAside) bool { return a.ID == id })
	if i < 0 {
		defer j.mu.Unlock()
		return nil, fmt.Errorf("nothing is set aside under %q%s", id, describeAsides(j.asides))
	}
	a := j.asides[i]
	j.mu.Unlock()

	// The tables were recreated after this process read the catalog.
	ctx, cancel := context.WithTimeout(t.bgCtx, 10*time.Second)
	defer cancel()
	if err := t.store.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("read OpenMLDB's tables: %w; nothing was restored", err)
	}
	var groups []heldGroup
	for _, jg := range a.Groups {
		g, why := decodeJournalGroup(jg, t.store.Table)
		if why != "" {
			return nil, fmt.Errorf("%s.%s (%d rows) still cannot be written: %s; nothing was restored", jg.DB, jg.Table, len(jg.Rows), why)
		}
		groups = append(groups, g)
	}
	var pending []*pendingCommit
	var loaded []journalPending
	for _, v := range t.txns.loadedViews() {
		loaded = append(loaded, v.desc)
	}
	if err := checkNotPending(a.Pending, loaded); err != nil {
		return nil, err
	}
	for _, jp := range a.Pending {
		pc, why := decodeJournalPending(jp, t.store.Table)
		if why != "" {
			return nil, fmt.Errorf("%s still cannot be written; nothing was restored", why)
		}
		pending = append(pending, pc)
	}

	// Out of the set-aside rows and into those owed or pending, and written so, in one step under
	// the journal's lock: no save can write the rows in both places, or in neither, and a failed
	// write takes the step back (nothing is written to OpenMLDB before it succeeds).
	j.mu.Lock()
	i = slices.IndexFunc(j.asides, func(a journalSetAside) bool { return a.ID == id })
	if i < 0 {
		j.mu.Unlock()
		return nil, fmt.Errorf("the rows set aside under %q were restored meanwhile", id)
	}
	before := j.asides
	j.asides = slices.Delete(slices.Clone(j.asides), i, i+1)
	keys := t.txns.adopt(groups)
	t.txns.load(pending)
	if err := t.saveJournalLocked(); err != nil {
		t.txns.forget(keys, pending)
		j.asides = before
		j.mu.Unlock()
		return nil, fmt.Errorf("the journal could not be rewritten, so nothing was restored: %w", err)
	}
	t.metrics.rowsSetAside.Set(float64(countAsideRows(j.asides)))
	j.mu.Unlock()
	t.log.Warn("an operator restored rows set aside at an earlier start", "set_aside_id", id, "owed_rows", countRows(groups), "pending_transactions", len(pending))
	for _, k := range keys {
		t.retryCommitted(k, "(restored)")
	}
	if len(pending) > 0 {
		t.startResolving(pending)
	}
	return &a, nil
}
