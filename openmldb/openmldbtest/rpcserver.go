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
	newReq func() proto.Message
	call   func(ctx context.Context, req proto.Message) (proto.Message, *rpcError)
}

// service is a named set of methods, named like brpc does: the proto's full service name.
type service struct {
	name    string
	methods map[string]method
}

// rpcServer serves baidu_std on one loopback listener. Requests on one connection are handled
// concurrently and answered as they finish, tagged with their correlation_id, as brpc does.
type rpcServer struct {
	ln       net.Listener
	services map[string]*service
	auth     func([]byte) bool // nil: no credential check
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newRPCServer(log *slog.Logger, auth func([]byte) bool, svcs ...*service) (*rpcServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &rpcServer{ln: ln, services: map[string]*service{}, auth: auth, log: log,
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

func (s *rpcServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.ctx)
	out := make(chan []byte, 256)
	writerDone := make(chan struct{})
	go writeLoop(c, out, writerDone)

	var inflight sync.WaitGroup
	br := bufio.NewReaderSize(c, 64<<10)
	hdr := make([]byte, 12)
	first := true
	graceful := false
	for {
		f, err := readFrame(br, hdr)
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
			if b, err := errorFrame(f.meta.GetCorrelationId(), &rpcError{errRPCAuth, "authentication failed"}); err == nil {
				out <- b
			}
			graceful = true
			break
		}
		first = false
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			b, err := s.dispatch(ctx, f)
			if err != nil {
				s.log.Error("encode response", "err", err)
				return
			}
			out <- b
		}()
	}
	if !graceful {
		c.Close()
	}
	cancel()
	inflight.Wait()
	close(out)
	<-writerDone
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// writeLoop writes response frames, flushing whenever no more are queued so pipelined answers
// share system calls. After a write error it keeps draining so handlers never block.
func writeLoop(c net.Conn, out <-chan []byte, done chan<- struct{}) {
	defer close(done)
	bw := bufio.NewWriterSize(c, 64<<10)
	failed := false
	for b := range out {
		if failed {
			continue
		}
		if _, err := bw.Write(b); err != nil {
			failed = true
			c.Close()
			continue
		}
		if len(out) == 0 {
			if err := bw.Flush(); err != nil {
				failed = true
				c.Close()
			}
		}
	}
	if !failed {
		bw.Flush()
	}
}

// dispatch serves one request frame and returns the encoded response frame.
func (s *rpcServer) dispatch(ctx context.Context, f *frame) ([]byte, error) {
	cid := f.meta.GetCorrelationId()
	rm := f.meta.GetRequest()
	if ct := f.meta.GetCompressType(); ct != 0 {
		return errorFrame(cid, &rpcError{errRequest, fmt.Sprintf("compress_type %d not supported (OpenMLDB never compresses)", ct)})
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
		return errorFrame(cid, &rpcError{errNoService, fmt.Sprintf("Fail to find service=%s", rm.GetServiceName())})
	}
	m, ok := svc.methods[rm.GetMethodName()]
	if !ok {
		return errorFrame(cid, &rpcError{errNoMethod, fmt.Sprintf("Fail to find method=%s in service=%s", rm.GetMethodName(), svc.name)})
	}
	req := m.newReq()
	if err := proto.Unmarshal(f.payload, req); err != nil {
		return errorFrame(cid, &rpcError{errRequest, fmt.Sprintf("Fail to parse request message %s: %v", req.ProtoReflect().Descriptor().FullName(), err)})
	}
	resp, rerr := m.call(ctx, req)
	if rerr != nil {
		return errorFrame(cid, rerr)
	}
	payload, err := proto.Marshal(resp)
	if err != nil {
		return errorFrame(cid, &rpcError{errInternal, fmt.Sprintf("marshal response: %v", err)})
	}
	meta := &brpcpb.RpcMeta{
		Response:      &brpcpb.RpcResponseMeta{ErrorCode: proto.Int32(0)},
		CorrelationId: proto.Int64(cid),
		CompressType:  proto.Int32(0),
	}
	return appendFrame(make([]byte, 0, 12+32+len(payload)), meta, payload)
}

// errorFrame is a framework error answer: error_code/error_text set, empty body.
func errorFrame(cid int64, e *rpcError) ([]byte, error) {
	meta := &brpcpb.RpcMeta{
		Response:      &brpcpb.RpcResponseMeta{ErrorCode: proto.Int32(e.code), ErrorText: proto.String(e.text)},
		CorrelationId: proto.Int64(cid),
		CompressType:  proto.Int32(0),
	}
	return appendFrame(nil, meta, nil)
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
