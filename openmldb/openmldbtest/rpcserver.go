package openmldbtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/brpcpb"
)

// rpcError is a framework-level failure reported in RpcResponseMeta.error_code.
type rpcError struct {
	code int32
	text string
}

// method is one RPC: how to allocate its request and how to serve it.
type method struct {
	// reusable: the handler keeps nothing of the request message after returning (bytes and
	// strings it stores are copies made by Unmarshal), so a connection may reuse it.
	reusable bool
	newReq   func() proto.Message
	call     func(ctx context.Context, req proto.Message) (proto.Message, *rpcError)
}

// service is a named set of methods, named like brpc does: the proto's full service name.
type service struct {
	name    string
	methods map[string]method
}

// rpcServer serves baidu_std on one loopback listener. Answers are tagged with their
// correlation_id and may leave out of order, as brpc's do. Requests served inline (see serveConn)
// run in the order they arrived, unless concurrent is set: brpc runs all but the last request of
// one read on bthreads of their own, so a real tablet may apply the pipelined Puts of one
// connection in another order.
type rpcServer struct {
	ln       net.Listener
	services map[string]*service
	auth     func([]byte) bool // nil: no credential check
	// inline reports whether requests may be served on the connection's reading goroutine now;
	// nil means never (each request gets its own goroutine).
	inline func() bool
	// concurrent: a request followed by another complete buffered frame runs on a goroutine of
	// its own, as brpc runs all but the last message of a read on bthreads (Options.ConcurrentReads).
	concurrent bool
	log        *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newRPCServer(addr string, log *slog.Logger, auth func([]byte) bool, inline func() bool, concurrent bool, svcs ...*service) (*rpcServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &rpcServer{ln: ln, services: map[string]*service{}, auth: auth, inline: inline, concurrent: concurrent, log: log,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	for _, svc := range svcs {
		s.services[svc.name] = svc
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *rpcServer) addr() string { return s.ln.Addr().String() }

// close stops accepting, drops every connection and waits for all handlers to return.
func (s *rpcServer) close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *rpcServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept failed", "addr", s.addr(), "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

// serveConn reads request frames and answers them. Requests are served on the reading goroutine
// while s.inline allows it (the common case: no goroutine per request), their answers collected
// in one buffer that is written with a single system call once no further complete frame is
// buffered, so pipelined requests share reads and writes. Otherwise (a stalled Put, a nameserver
// call, or a Put that found a stall beginning after it was dispatched inline) each request runs
// on its own goroutine and its answer is written as soon as it is ready.
func (s *rpcServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.ctx)
	inlineCtx := context.WithValue(ctx, inlineKey{}, true)
	w := &respWriter{nc: c}
	var async sync.WaitGroup
	br := bufio.NewReaderSize(c, 64<<10)
	fr := &frameReader{r: br}
	reqs := map[methodKey]proto.Message{}
	first := true
	graceful := false
	lastFlush := time.Now()
	for {
		if !fr.complete() {
			// Nothing more to answer without blocking: send what the batch produced.
			if err := w.flush(); err != nil {
				s.log.Debug("connection write ended", "addr", s.addr(), "err", err)
				break
			}
			lastFlush = time.Now()
		}
		f, err := fr.next()
		if err != nil {
			if errors.Is(err, errMalformed) {
				s.log.Warn("closing connection on malformed frame", "addr", s.addr(), "remote", c.RemoteAddr(), "err", err)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("connection read ended", "addr", s.addr(), "err", err)
			}
			break
		}
		if f.meta.GetRequest() == nil || f.meta.GetResponse() != nil {
			s.log.Warn("closing connection: frame is not a request", "addr", s.addr(), "remote", c.RemoteAddr())
			break
		}
		if first && s.auth != nil && !s.auth(f.meta.GetAuthenticationData()) {
			s.log.Warn("closing connection: authentication failed", "addr", s.addr(), "remote", c.RemoteAddr())
			w.append(f.meta.GetCorrelationId(), nil, &rpcError{errRPCAuth, "authentication failed"})
			graceful = true
			break
		}
		first = false
		if s.inline != nil && s.inline() && !(s.concurrent && fr.complete()) {
			resp, rerr := s.dispatch(inlineCtx, f, reqs)
			if rerr != errWouldBlock {
				w.append(f.meta.GetCorrelationId(), resp, rerr)
				// A client that keeps the read buffer full would otherwise get no answer until
				// it pauses: brpc answers each request as it completes.
				if w.pending() >= inlineFlushBytes || time.Since(lastFlush) >= inlineFlushEvery {
					if err := w.flush(); err != nil {
						s.log.Debug("connection write ended", "addr", s.addr(), "err", err)
						break
					}
					lastFlush = time.Now()
				}
				continue
			}
			// The handler would block (a stall began after inline was decided): serve the
			// request on its own goroutine instead, as below.
		}
		f = f.clone()
		async.Add(1)
		go func() {
			defer async.Done()
			resp, rerr := s.dispatch(ctx, f, nil)
			w.append(f.meta.GetCorrelationId(), resp, rerr)
			if err := w.flush(); err != nil {
				s.log.Debug("connection write ended", "addr", s.addr(), "err", err)
			}
		}()
	}
	if !graceful {
		c.Close()
	}
	cancel()
	async.Wait()
	if graceful {
		_ = w.flush()
	}
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// inlineKey marks the context of a request served on its connection's reading goroutine.
type inlineKey struct{}

// errWouldBlock is returned by a handler served inline that would have to wait; the server then
// serves the request again on a goroutine of its own.
var errWouldBlock = &rpcError{code: -1, text: "would block"}

// servedInline reports whether ctx is that of a request served on the reading goroutine.
func servedInline(ctx context.Context) bool { return ctx.Value(inlineKey{}) != nil }

// methodKey names a method for the per-connection cache of reusable request messages.
type methodKey struct {
	svc  *service
	name string
}

// respWriter collects encoded answers of one connection; flush writes them in one system call.
// After a write error the connection is closed and later answers are dropped.
type respWriter struct {
	nc     net.Conn
	mu     sync.Mutex
	buf    []byte
	meta   brpcpb.RpcMeta
	rmeta  brpcpb.RpcResponseMeta
	cid    int64
	code   int32
	zero   int32
	text   string
	failed error
}

// append encodes one answer: resp on success, or rerr as a framework error with an empty body.
func (w *respWriter) append(cid int64, resp proto.Message, rerr *rpcError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return
	}
	// The meta is reused: its fields point at the writer's own variables.
	w.cid, w.code, w.zero = cid, 0, 0
	w.rmeta = brpcpb.RpcResponseMeta{ErrorCode: &w.code}
	if rerr != nil {
		w.code, w.text = rerr.code, rerr.text
		w.rmeta.ErrorText = &w.text
	}
	w.meta = brpcpb.RpcMeta{Response: &w.rmeta, CorrelationId: &w.cid, CompressType: &w.zero}
	start := len(w.buf)
	var err error
	w.buf, err = appendFrameMsg(w.buf, &w.meta, resp)
	if err != nil && rerr == nil {
		w.buf = w.buf[:start]
		w.code, w.text = errInternal, fmt.Sprintf("marshal response: %v", err)
		w.rmeta.ErrorText = &w.text
		w.buf, err = appendFrameMsg(w.buf, &w.meta, nil)
	}
	if err != nil {
		w.buf = w.buf[:start]
		w.failed = fmt.Errorf("encode response: %w", err)
		w.nc.Close()
	}
}

// inlineFlushBytes and inlineFlushEvery bound how many bytes of answers a connection's reading
// goroutine collects, and for how long, before writing them although more complete requests
// are buffered.
const (
	inlineFlushBytes = 64 << 10
	inlineFlushEvery = 5 * time.Millisecond
)

// pending is how many bytes of answers are collected and not written yet.
func (w *respWriter) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf)
}

// flush writes every collected answer.
func (w *respWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return w.failed
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.nc.Write(w.buf)
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not pin a burst's buffer for the connection's lifetime
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil {
		w.failed = fmt.Errorf("write responses: %w", err)
		w.nc.Close()
	}
	return w.failed
}

// dispatch serves one request frame. With reqs non-nil, request messages of methods that keep
// nothing of them are reused across calls.
func (s *rpcServer) dispatch(ctx context.Context, f *frame, reqs map[methodKey]proto.Message) (proto.Message, *rpcError) {
	rm := f.meta.GetRequest()
	if ct := f.meta.GetCompressType(); ct != 0 {
		return nil, &rpcError{errRequest, fmt.Sprintf("compress_type %d not supported (OpenMLDB never compresses)", ct)}
	}
	svc := s.services[rm.GetServiceName()]
	if svc == nil && !strings.Contains(rm.GetServiceName(), ".") {
		// brpc also resolves a bare service name.
		for full, cand := range s.services {
			if full[strings.LastIndex(full, ".")+1:] == rm.GetServiceName() {
				svc = cand
			}
		}
	}
	if svc == nil {
		return nil, &rpcError{errNoService, fmt.Sprintf("Fail to find service=%s", rm.GetServiceName())}
	}
	m, ok := svc.methods[rm.GetMethodName()]
	if !ok {
		return nil, &rpcError{errNoMethod, fmt.Sprintf("Fail to find method=%s in service=%s", rm.GetMethodName(), svc.name)}
	}
	var req proto.Message
	if m.reusable && reqs != nil {
		k := methodKey{svc, rm.GetMethodName()}
		if req = reqs[k]; req == nil {
			req = m.newReq()
			reqs[methodKey{svc, strings.Clone(k.name)}] = req
		}
	} else {
		req = m.newReq()
	}
	if err := proto.Unmarshal(f.payload, req); err != nil {
		return nil, &rpcError{errRequest, fmt.Sprintf("Fail to parse request message %s: %v", req.ProtoReflect().Descriptor().FullName(), err)}
	}
	return m.call(ctx, req)
}

// typed adapts a typed handler to a method.
func typed[Req proto.Message, Resp proto.Message](newReq func() Req, call func(context.Context, Req) (Resp, *rpcError)) method {
	return method{
		newReq: func() proto.Message { return newReq() },
		call: func(ctx context.Context, req proto.Message) (proto.Message, *rpcError) {
			resp, rerr := call(ctx, req.(Req))
			if rerr != nil {
				return nil, rerr
			}
			return resp, nil
		},
	}
}
