package openmldb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
)

// baidu_std service names (FLAGS_baidu_protocol_use_fullname: the fully qualified proto names).
const (
	TabletService     = "openmldb.api.TabletServer"
	NameServerService = "openmldb.nameserver.NameServer"
)

const (
	frameHeaderSize = 12
	maxBodySize     = 64 << 20 // brpc's default --max_body_size
	writeTimeout    = 30 * time.Second
	sweepInterval   = 20 * time.Millisecond
)

// brpc framework error codes (src/brpc/errno.proto) a client may retry after.
const (
	ErrCodeFailedSocket = 1009
	ErrCodeOvercrowded  = 1011
	ErrCodeEOF          = 1014
	ErrCodeLogoff       = 2003
	ErrCodeLimit        = 2004
	ErrCodeRPCAuth      = 1004
)

// RPCError is a failure reported by the brpc framework in RpcMeta.response (error_code != 0),
// as opposed to OpenMLDB's own code/msg in the response message.
type RPCError struct {
	Code int32
	Text string
}

// Error implements error.
func (e *RPCError) Error() string { return fmt.Sprintf("brpc error %d: %s", e.Code, e.Text) }

// Retriable reports whether brpc's own client would retry this error.
func (e *RPCError) Retriable() bool {
	switch e.Code {
	case ErrCodeFailedSocket, ErrCodeOvercrowded, ErrCodeEOF, ErrCodeLogoff, ErrCodeLimit:
		return true
	}
	return false
}

// ServerError is a non-zero code/msg in an OpenMLDB response message.
type ServerError struct {
	Method string
	Code   int32
	Msg    string
}

// Error implements error.
func (e *ServerError) Error() string {
	return fmt.Sprintf("%s: openmldb code %d: %s", e.Method, e.Code, e.Msg)
}

// ConnError is a transport failure talking to an endpoint: dial, write, read or a broken connection.
// Whether the request reached the server is unknown.
type ConnError struct {
	Addr string
	Err  error
}

// Error implements error.
func (e *ConnError) Error() string { return fmt.Sprintf("connection to %s: %v", e.Addr, e.Err) }

// Unwrap returns the underlying network error.
func (e *ConnError) Unwrap() error { return e.Err }

// ErrCallTimeout is returned (wrapped) when a call's deadline passes before its response arrives.
var ErrCallTimeout = errors.New("rpc deadline exceeded")

// Credential returns the baidu_std authentication_data OpenMLDB expects for a user:
// "u" + user + ":" + "1" + lowercase hex SHA-256 of the password.
func Credential(user, password string) []byte {
	sum := sha256.Sum256([]byte(password))
	b := make([]byte, 0, 2+len(user)+1+2*len(sum))
	b = append(b, 'u')
	b = append(b, user...)
	b = append(b, ':', '1')
	return hex.AppendEncode(b, sum[:])
}

// AppendRequestFrame appends one baidu_std request frame (PRPC header, RpcMeta, body) to dst.
// auth is sent as authentication_data when non-nil.
func AppendRequestFrame(dst []byte, service, method string, correlationID int64, auth []byte, req proto.Message) ([]byte, error) {
	meta := &brpcpb.RpcMeta{
		Request:       &brpcpb.RpcRequestMeta{ServiceName: proto.String(service), MethodName: proto.String(method)},
		CorrelationId: proto.Int64(correlationID),
	}
	if auth != nil {
		meta.AuthenticationData = auth
	}
	start := len(dst)
	dst = append(dst, 'P', 'R', 'P', 'C', 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	dst, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, meta)
	if err != nil {
		return dst[:start], fmt.Errorf("marshal rpc meta: %w", err)
	}
	metaSize := len(dst) - start - frameHeaderSize
	dst, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, req)
	if err != nil {
		return dst[:start], fmt.Errorf("marshal %s.%s request: %w", service, method, err)
	}
	body := len(dst) - start - frameHeaderSize
	if body > maxBodySize {
		return dst[:start], fmt.Errorf("%s.%s request of %d bytes exceeds %d", service, method, body, maxBodySize)
	}
	binary.BigEndian.PutUint32(dst[start+4:], uint32(body))
	binary.BigEndian.PutUint32(dst[start+8:], uint32(metaSize))
	return dst, nil
}

// callback receives a response body (valid only during the call) or an error.
type callback func(body []byte, err error)

type pending struct {
	cb       callback
	ctx      context.Context
	deadline time.Time
	began    time.Time // set when calls are observed (Options.OnRPC)
	// late, if set, runs once the call is really over when it expired first (cb got an
	// *expiredError): with the response's message when it arrives after all, with a
	// *ConnError when the connection ends first, or with errNotSent when its frame never left.
	late lateHandler
}

// lateHandler is told how an expired call ended after all (see pending.late).
type lateHandler interface {
	late(body []byte, err error)
}

// errNotSent is what an expired call's late gets when its frame was never written: the server
// cannot have it, and sending it now is safe.
var errNotSent = fmt.Errorf("%w before it was sent", ErrCallTimeout)

// expiredError is what a call that timed out or was cancelled before its response gets; the
// request may still be in the socket or at the server.
type expiredError struct{ err error }

func (e *expiredError) Error() string { return e.err.Error() }
func (e *expiredError) Unwrap() error { return e.err }

// complete ends call p: it reports the call to the observer, if any, then to its callback.
func (c *rpcConn) complete(p pending, body []byte, err error) {
	if obs := c.observe; obs != nil {
		obs(c.addr, time.Since(p.began), err)
	}
	p.cb(body, err)
}

// rpcConn is one TCP connection with many calls in flight, matched by correlation id. Frames
// are appended to a shared buffer that one caller at a time writes (see start).
type rpcConn struct {
	addr string
	nc   net.Conn
	raw  syscall.RawConn // nc's socket, for writes that must not block; nil when not a socket
	log  *slog.Logger
	// lane, for a connection a Lane's loop serves (nc nil), writes and closes it; set once by
	// attach under pmu, before the connection is handed to writers.
	lane *laneIO

	wmu      sync.Mutex
	wbuf     []byte
	spare    []byte
	authSent bool
	auth     []byte
	writing  bool // a caller is writing wbuf's contents
	// connecting is set while the pool dials the connection (nc nil); it changes under wmu.
	// Calls made meanwhile wait in deferred, unbuilt, so that one expired or cancelled before
	// the dial completes is never sent.
	connecting atomic.Bool
	deferred   []deferredCall

	pmu     sync.Mutex
	pending map[int64]pending
	late    map[int64]lateCall // expired calls' late, until their response, the connection's end or lateKeep
	// lateKeep is how long an expired call's late waits for its answer: a server that keeps the
	// connection open but never answers would otherwise make every expired call hold its
	// caller's state (a Put's attempt, its Write's arenas) for as long as the connection lives.
	lateKeep time.Duration
	dead     error
	failed   atomic.Bool // dead != nil, readable without pmu

	closed chan struct{}
	once   sync.Once
	// observe is Options.OnRPC (nil: calls are not observed).
	observe func(endpoint string, d time.Duration, err error)
}

// connected gives c, created connecting, its socket: reading starts, and the frames of the calls
// made meanwhile that still wait are built, in the order the calls came, and written. It reports
// false, leaving nc to the caller, when c failed first.
func (c *rpcConn) connected(nc net.Conn) bool {
	var raw syscall.RawConn
	if sc, ok := nc.(syscall.Conn); ok {
		if r, err := sc.SyscallConn(); err == nil {
			raw = r
		}
	}
	c.pmu.Lock() // fail reads nc under pmu
	if c.dead != nil {
		c.pmu.Unlock()
		return false
	}
	c.nc, c.raw = nc, raw
	c.pmu.Unlock()
	go c.readLoop()

	type broken struct {
		id  int64
		err error
	}
	var failed []broken
	var gone []int64
	c.wmu.Lock() // writers look at connecting under wmu, so they see nc and raw set
	for _, d := range c.deferred {
		if !c.waiting(d.id) {
			gone = append(gone, d.id) // expired or cancelled meanwhile: never sent
			continue
		}
		if err := c.appendFrameLocked(d.build); err != nil {
			failed = append(failed, broken{d.id, err})
		}
	}
	c.deferred = nil
	c.connecting.Store(false)
	if c.writing || len(c.wbuf) == 0 {
		c.wmu.Unlock()
	} else {
		c.writing = true
		c.writeQueued(true)
	}
	for _, b := range failed {
		if p, ok := c.take(b.id); ok {
			c.complete(p, nil, b.err)
		}
	}
	for _, id := range gone {
		if late := c.takeLate(id); late != nil {
			late.late(nil, errNotSent)
		}
	}
	return true
}

// appendFrameLocked builds a call's frame at the end of wbuf (wmu held), with the credential on
// the connection's first frame: brpc verifies the first message of each connection only. A
// frame that fails to build leaves nothing behind.
func (c *rpcConn) appendFrameLocked(build func(dst []byte, auth []byte) ([]byte, error)) error {
	var auth []byte
	if !c.authSent {
		auth = c.auth
	}
	n := len(c.wbuf)
	var err error
	if c.wbuf, err = build(c.wbuf, auth); err != nil {
		c.wbuf = c.wbuf[:n]
		return err
	}
	c.authSent = true
	return nil
}

// waiting reports whether call id still waits for its response.
func (c *rpcConn) waiting(id int64) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	_, ok := c.pending[id]
	return ok
}

// deferredCall is a call made while its connection was being dialed: its frame is built when
// the dial completes, if the call is still waiting then.
type deferredCall struct {
	id    int64
	build func(dst []byte, auth []byte) ([]byte, error)
}

// newDialingConn is a connection whose socket connected will give it; calls made meanwhile wait,
// and time out like any other.
func newDialingConn(addr string, auth []byte, log *slog.Logger, lateKeep time.Duration) *rpcConn {
	c := newConnState(addr, auth, log, lateKeep)
	c.connecting.Store(true)
	go c.sweepLoop()
	return c
}

// newConnState is a connection's call table and write state, without its transport. An
// expired call's late is kept for lateKeep (see lateCall).
func newConnState(addr string, auth []byte, log *slog.Logger, lateKeep time.Duration) *rpcConn {
	return &rpcConn{addr: addr, auth: auth, log: log, pending: make(map[int64]pending), closed: make(chan struct{}), lateKeep: lateKeep}
}

// isDead reports whether the connection has failed or was closed.
func (c *rpcConn) isDead() bool {
	return c.failed.Load()
}

// fail closes the connection and completes every pending call with err.
func (c *rpcConn) fail(err error) { c.failCalls(err, true) }

// failCalls is fail; with observed false the calls are not reported to the observer (a failed
// dial is reported once, as itself).
func (c *rpcConn) failCalls(err error, observed bool) {
	c.pmu.Lock()
	if c.dead != nil {
		c.pmu.Unlock()
		return
	}
	c.dead = err
	c.failed.Store(true)
	calls := c.pending
	c.pending = nil
	late := c.late
	c.late = nil
	lane, nc := c.lane, c.nc
	c.pmu.Unlock()
	c.once.Do(func() { close(c.closed) })
	switch {
	case nc != nil:
		nc.Close()
	case lane != nil:
		lane.close()
	}
	c.wmu.Lock()
	c.deferred = nil // their calls end below
	// Nothing more is written; a dead connection can stay in a map a while (until its address
	// is dialed again, which for a tablet gone for good is never), so it keeps no buffers.
	if !c.writing {
		c.wbuf = nil
	}
	c.spare = nil
	c.wmu.Unlock()
	for _, p := range calls {
		cerr := &ConnError{Addr: c.addr, Err: err}
		if observed {
			c.complete(p, nil, cerr)
		} else {
			p.cb(nil, cerr)
		}
	}
	for _, f := range late {
		f.h.late(nil, &ConnError{Addr: c.addr, Err: err})
	}
}

// start registers cb and sends the frame built by build; cb is always called exactly once.
func (c *rpcConn) start(ctx context.Context, deadline time.Time, id int64, cb callback,
	build func(dst []byte, auth []byte) ([]byte, error)) {
	if c.enqueue(ctx, deadline, id, cb, build) {
		c.flush(true)
	}
}

// enqueue registers cb and appends the frame built by build to the write buffer without
// writing it, so a caller issuing many calls pays one system call for all of them (flush).
// It reports whether a frame was queued; when not, cb has already been called with the error.
// A caller that queued frames must call flush before it blocks on anything those calls'
// completions would release.
func (c *rpcConn) enqueue(ctx context.Context, deadline time.Time, id int64, cb callback,
	build func(dst []byte, auth []byte) ([]byte, error)) bool {
	return c.enqueueCall(ctx, deadline, id, cb, nil, build)
}

// enqueueCall is enqueue with a late (see pending): a caller that must know when an expired
// call is over, not just when it stopped waiting.
func (c *rpcConn) enqueueCall(ctx context.Context, deadline time.Time, id int64, cb callback, late lateHandler,
	build func(dst []byte, auth []byte) ([]byte, error)) bool {
	c.pmu.Lock()
	if c.dead != nil {
		err := c.dead
		c.pmu.Unlock()
		cb(nil, &ConnError{Addr: c.addr, Err: err})
		return false
	}
	p := pending{cb: cb, ctx: ctx, deadline: deadline, late: late}
	if c.observe != nil {
		p.began = time.Now()
	}
	c.pending[id] = p
	c.pmu.Unlock()

	c.wmu.Lock()
	if c.connecting.Load() {
		c.deferred = append(c.deferred, deferredCall{id: id, build: build})
		c.wmu.Unlock()
		return true
	}
	err := c.appendFrameLocked(build)
	c.wmu.Unlock()
	if err != nil {
		if p, ok := c.take(id); ok {
			c.complete(p, nil, err)
		}
		return false
	}
	return true
}

// flush writes everything queued. The caller that finds no write in progress becomes the
// writer and also writes the frames other callers append meanwhile, so concurrent calls
// coalesce into few system calls without a hand-off to another goroutine, and each caller's
// issue order is kept on the wire. A caller finding a write in progress returns at once: the
// writer picks its frames up before it stops. With wait false the caller never blocks on a
// full socket (a stalled tablet): what the socket does not take at once is written by a
// goroutine.
func (c *rpcConn) flush(wait bool) {
	c.wmu.Lock()
	if c.writing || c.connecting.Load() || (c.lane != nil && c.lane.held) {
		c.wmu.Unlock() // the writer, the dial's end or the lane's release writes it
		return
	}
	c.writing = true
	c.writeQueued(wait)
}

// writeQueued writes wbuf until it is empty. c.writing is set and wmu held on entry; both are
// released on return (or handed to the goroutine finishing a write the socket did not take).
func (c *rpcConn) writeQueued(wait bool) {
	for len(c.wbuf) > 0 {
		if c.lane != nil && c.failed.Load() {
			// Its calls have failed already (and may be retried elsewhere): sending them now
			// could store rows twice.
			c.wbuf, c.spare = nil, nil
			break
		}
		buf := c.wbuf
		// The spare becomes the buffer frames are queued in while buf is written; it is the
		// spare no more (a big buf does not replace it below, and the next pass must not take
		// it again while it is being written).
		c.wbuf, c.spare = c.spare[:0], nil
		c.wmu.Unlock()
		var n int
		var werr error
		if c.lane != nil {
			// On the lane's loop, which buffers what the socket does not take.
			werr = c.lane.write(buf)
			n = len(buf)
		} else if wait || c.raw == nil {
			werr = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if werr == nil {
				n, werr = c.nc.Write(buf)
			}
		} else {
			n, werr = tryWrite(c.raw, buf)
		}
		c.wmu.Lock()
		if werr != nil {
			c.wbuf, c.spare = nil, nil // the connection fails now: nothing more is written
			c.writing = false
			c.wmu.Unlock()
			c.fail(fmt.Errorf("write: %w", werr))
			return
		}
		if n < len(buf) {
			// The socket is full: the rest goes back in front of what was queued meanwhile,
			// and a goroutine waits until the tablet reads it.
			rest := append(buf[:0], buf[n:]...)
			rest = append(rest, c.wbuf...)
			if cap(c.wbuf) <= 1<<20 {
				c.spare = c.wbuf[:0]
			}
			c.wbuf = rest
			c.wmu.Unlock() // writing stays set: the goroutine is the writer now
			go func() {
				c.wmu.Lock()
				c.writeQueued(true)
			}()
			return
		}
		if cap(buf) <= 1<<20 && !c.failed.Load() {
			c.spare = buf[:0]
		}
	}
	if c.failed.Load() {
		c.wbuf, c.spare = nil, nil
	}
	c.writing = false
	c.wmu.Unlock()
}

// responseMessage is a response frame body's message: what follows the meta, without the
// attachment.
func responseMessage(body []byte, metaSize uint32, meta responseMeta) []byte {
	msg := body[metaSize:]
	if att := int(meta.attachmentSize); att > 0 && att <= len(msg) {
		msg = msg[:len(msg)-att]
	}
	return msg
}

// lateCall is an expired call's late and when it stops waiting for the answer.
type lateCall struct {
	h     lateHandler
	until time.Time
}

// errNoAnswerKept is what an expired call's late gets when its answer did not come within the
// connection's lateKeep: the connection still lives, but the call is given up on.
var errNoAnswerKept = fmt.Errorf("%w, and no answer came while it was waited for", ErrCallTimeout)

// takeLate removes and returns the late of an expired call.
func (c *rpcConn) takeLate(id int64) lateHandler {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	f, ok := c.late[id]
	if !ok {
		return nil
	}
	delete(c.late, id)
	return f.h
}

// take removes and returns a pending call.
func (c *rpcConn) take(id int64) (pending, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	p, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
	}
	return p, ok
}

func (c *rpcConn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [frameHeaderSize]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		bodySize, metaSize, err := parseFrameHeader(hdr[:])
		if err != nil {
			c.fail(err)
			return
		}
		if cap(body) < int(bodySize) {
			body = make([]byte, bodySize)
		}
		body = body[:bodySize]
		if _, err := io.ReadFull(r, body); err != nil {
			c.fail(fmt.Errorf("read body: %w", err))
			return
		}
		if err := c.deliver(body, metaSize); err != nil {
			c.fail(err)
			return
		}
	}
}

// feed completes the calls answered by the whole frames at the start of data, for a connection
// whose reads a Lane's loop does, and returns how many bytes those frames took: a frame not yet
// complete is left for the next call. A malformed frame fails the connection.
func (c *rpcConn) feed(data []byte) int {
	used := 0
	for len(data)-used >= frameHeaderSize {
		bodySize, metaSize, err := parseFrameHeader(data[used:])
		if err != nil {
			c.fail(err)
			return len(data)
		}
		end := used + frameHeaderSize + int(bodySize)
		if end > len(data) {
			break
		}
		if err := c.deliver(data[used+frameHeaderSize:end], metaSize); err != nil {
			c.fail(err)
			return len(data)
		}
		used = end
	}
	return used
}

// parseFrameHeader checks a response frame's header and returns its body and meta sizes.
func parseFrameHeader(hdr []byte) (bodySize, metaSize uint32, err error) {
	if string(hdr[:4]) != "PRPC" {
		return 0, 0, fmt.Errorf("bad frame magic %q", hdr[:4])
	}
	bodySize = binary.BigEndian.Uint32(hdr[4:])
	metaSize = binary.BigEndian.Uint32(hdr[8:])
	if bodySize > maxBodySize || metaSize > bodySize {
		return 0, 0, fmt.Errorf("bad frame sizes body %d meta %d", bodySize, metaSize)
	}
	return bodySize, metaSize, nil
}

// deliver completes the call a response frame's body answers (a call that timed out or was
// cancelled already is skipped). An error means the stream cannot be trusted any more.
func (c *rpcConn) deliver(body []byte, metaSize uint32) error {
	meta, err := parseResponseMeta(body[:metaSize])
	if err != nil {
		return err
	}
	p, ok := c.take(meta.correlationID)
	if !ok {
		if late := c.takeLate(meta.correlationID); late != nil {
			if meta.errorCode != 0 {
				late.late(nil, &RPCError{Code: meta.errorCode, Text: meta.errorText})
			} else {
				late.late(responseMessage(body, metaSize, meta), nil)
			}
		}
		return nil
	}
	if meta.errorCode != 0 {
		c.complete(p, nil, &RPCError{Code: meta.errorCode, Text: meta.errorText})
		return nil
	}
	c.complete(p, responseMessage(body, metaSize, meta), nil)
	return nil
}

// sweepLoop fails calls whose deadline passed or whose context ended.
func (c *rpcConn) sweepLoop() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	var expired []pending
	var abandoned []lateHandler
	for {
		select {
		case <-c.closed:
			return
		case now := <-t.C:
			expired, abandoned = expired[:0], abandoned[:0]
			c.pmu.Lock()
			for id, l := range c.late {
				if now.After(l.until) {
					delete(c.late, id)
					abandoned = append(abandoned, l.h)
				}
			}
			for id, p := range c.pending {
				if now.After(p.deadline) || p.ctx.Err() != nil {
					delete(c.pending, id)
					expired = append(expired, p)
					if p.late != nil {
						if c.late == nil {
							c.late = map[int64]lateCall{}
						}
						c.late[id] = lateCall{p.late, now.Add(c.lateKeep)}
					}
				}
			}
			c.pmu.Unlock()
			for _, h := range abandoned {
				h.late(nil, &expiredError{errNoAnswerKept})
			}
			for _, p := range expired {
				err := p.ctx.Err()
				if err == nil || errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("%s: %w", c.addr, ErrCallTimeout)
				}
				var cerr error = &expiredError{err}
				if c.connecting.Load() {
					// Not connected within the call's time: a connection failure to its
					// caller (who may try another endpoint), still an expiry underneath.
					cerr = &ConnError{Addr: c.addr, Err: cerr}
				}
				c.complete(p, nil, cerr)
			}
		}
	}
}

// rpcPool keeps one connection per endpoint and redials broken ones.
type rpcPool struct {
	auth    []byte
	timeout time.Duration
	log     *slog.Logger
	nextID  atomic.Int64

	mu    sync.RWMutex
	conns map[string]*rpcConn // nil once closed
	// observe is Options.OnRPC, handed to every connection; dial failures are reported too.
	observe func(endpoint string, d time.Duration, err error)
	// beforeDial, if set (by tests, before the first call), runs before each dial.
	beforeDial func()
}

func newRPCPool(auth []byte, timeout time.Duration, log *slog.Logger) *rpcPool {
	return &rpcPool{auth: auth, timeout: timeout, log: log, conns: map[string]*rpcConn{}}
}

// conn returns the connection to addr, starting one when there is none (or it died). A
// connection being dialed takes calls at once and writes them, in the order they came, when the
// dial completes (or fails them, retriably, when it does not): callers never wait for a dial,
// so one that came later cannot get its frames out first.
func (p *rpcPool) conn(addr string) (*rpcConn, error) {
	p.mu.RLock()
	c := p.conns[addr]
	p.mu.RUnlock()
	if c != nil && !c.isDead() {
		return c, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, &ConnError{Addr: addr, Err: net.ErrClosed}
	}
	if c := p.conns[addr]; c != nil && !c.isDead() {
		return c, nil
	}
	// Dead connections of other addresses go now: a tablet that moved to another address (a
	// pod with a new IP) would otherwise leave its entry for the life of the process.
	for a, dc := range p.conns {
		if dc.isDead() {
			delete(p.conns, a)
		}
	}
	c = newDialingConn(addr, p.auth, p.log, 2*p.timeout)
	c.observe = p.observe
	p.conns[addr] = c
	go p.dial(c)
	return c, nil
}

// dialTCP connects to a tablet or nameserver within the pool's timeout, with Nagle off (frames
// are written whole).
func (p *rpcPool) dialTCP(addr string) (net.Conn, error) {
	if p.beforeDial != nil {
		p.beforeDial()
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return nc, err
}

// dial connects c, which callers may already have queued calls on.
func (p *rpcPool) dial(c *rpcConn) {
	nc, err := p.dialTCP(c.addr)
	if err != nil {
		if p.observe != nil {
			p.observe(c.addr, 0, &ConnError{Addr: c.addr, Err: err})
		}
		c.failCalls(err, false) // the dial is the one failure observed
		return
	}
	if !c.connected(nc) {
		nc.Close() // the pool closed meanwhile
		return
	}
	p.log.Debug("openmldb: connected", "addr", c.addr)
}

// goCall starts an asynchronous call; cb runs exactly once, possibly on the connection's reader
// goroutine, so it must not block.
func (p *rpcPool) goCall(ctx context.Context, addr, service, method string, req proto.Message, cb callback) {
	p.goFrame(ctx, addr, cb, func(dst []byte, id int64, auth []byte) ([]byte, error) {
		return AppendRequestFrame(dst, service, method, id, auth, req)
	})
}

// goFrame is goCall with the request frame built by build for the call's correlation id.
func (p *rpcPool) goFrame(ctx context.Context, addr string, cb callback, build func(dst []byte, id int64, auth []byte) ([]byte, error)) {
	c, err := p.conn(addr)
	if err != nil {
		cb(nil, err)
		return
	}
	id := p.nextID.Add(1)
	c.start(ctx, p.deadline(ctx), id, cb, func(dst, auth []byte) ([]byte, error) {
		return build(dst, id, auth)
	})
}

// deadline is when a call started now under ctx times out: the pool's timeout or ctx's
// deadline, whichever comes first.
func (p *rpcPool) deadline(ctx context.Context) time.Time {
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// call is a synchronous call that unmarshals the response into resp.
func (p *rpcPool) call(ctx context.Context, addr, service, method string, req, resp proto.Message) error {
	done := make(chan error, 1)
	p.goCall(ctx, addr, service, method, req, func(body []byte, err error) {
		if err == nil {
			if uerr := proto.Unmarshal(body, resp); uerr != nil {
				err = fmt.Errorf("unmarshal %s.%s response: %w", service, method, uerr)
			}
		}
		done <- err
	})
	if err := <-done; err != nil {
		return fmt.Errorf("%s %s.%s: %w", addr, service, method, err)
	}
	return nil
}

// close closes every connection; pending calls fail with ConnError.
func (p *rpcPool) close() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.fail(net.ErrClosed)
	}
}
