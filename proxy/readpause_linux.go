//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
)

// gnet v2 has no way to stop reading a connection: on every readable event it reads the socket
// and appends what OnTraffic leaves unconsumed to the connection's inbound buffer, which grows
// without bound while the client keeps sending. To apply TCP backpressure the proxy takes the
// connection's fd out of the event loop's epoll read interest while it must not read, and puts
// it back to resume (the same epoll_ctl calls gnet makes itself). The loop's poller and the
// connection's poll attachment are not exported, so they are found once per connection by
// reflection; the layout is that of the gnet version pinned in go.mod, and TestReadPause*
// proves the mechanism. When the layout is not found, pausing reports an error and the session
// falls back to closing connections whose buffered input passes pausedInboundCap.
//
// gnet itself re-arms read interest when a write to the paused connection has to wait for the
// socket (and again when that write drains), so a paused session re-pauses every time OnTraffic
// runs while it is still over a bound; each such re-arm reads at most one event-loop buffer.

// readPauser controls the epoll read interest of one gnet connection.
type readPauser struct {
	fd     int
	epfd   int
	poller *netpoll.Poller
	pa     *netpoll.PollAttachment
}

// newReadPauser finds the poller and poll attachment of c (a gnet stream connection).
func newReadPauser(c gnet.Conn) (*readPauser, error) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("read pause: unexpected gnet conn type %T", c)
	}
	cv := v.Elem()
	loopF := cv.FieldByName("loop")
	paF := cv.FieldByName("pollAttachment")
	if !loopF.IsValid() || loopF.Kind() != reflect.Pointer || !paF.IsValid() || paF.Type() != reflect.TypeFor[netpoll.PollAttachment]() {
		return nil, errors.New("read pause: gnet conn layout not recognised")
	}
	loop := reflect.NewAt(loopF.Type(), unsafe.Pointer(loopF.UnsafeAddr())).Elem()
	if loop.IsNil() {
		return nil, errors.New("read pause: gnet conn has no event loop")
	}
	pollerF := loop.Elem().FieldByName("poller")
	if !pollerF.IsValid() || pollerF.Type() != reflect.TypeFor[*netpoll.Poller]() {
		return nil, errors.New("read pause: gnet event loop layout not recognised")
	}
	poller := reflect.NewAt(pollerF.Type(), unsafe.Pointer(pollerF.UnsafeAddr())).Elem().Interface().(*netpoll.Poller)
	fdF := reflect.ValueOf(poller).Elem().FieldByName("fd")
	if !fdF.IsValid() || fdF.Kind() != reflect.Int {
		return nil, errors.New("read pause: gnet poller layout not recognised")
	}
	pa := (*netpoll.PollAttachment)(unsafe.Pointer(paF.UnsafeAddr()))
	if pa.FD != c.Fd() {
		return nil, fmt.Errorf("read pause: poll attachment fd %d is not the conn's fd %d", pa.FD, c.Fd())
	}
	return &readPauser{fd: c.Fd(), epfd: int(fdF.Int()), poller: poller, pa: pa}, nil
}

// pause stops readable events; writable events stay armed while output is pending, so responses
// keep flowing to the client.
func (r *readPauser) pause(outPending bool) error {
	var ev uint32
	if outPending {
		ev = uint32(netpoll.WriteEvents)
	}
	if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_MOD, r.fd, &syscall.EpollEvent{Events: ev, Fd: int32(r.fd)}); err != nil {
		return fmt.Errorf("read pause: epoll_ctl mod fd %d: %w", r.fd, err)
	}
	return nil
}

// resume re-arms readable events (and writable ones while output is pending), as gnet sets them.
func (r *readPauser) resume(outPending bool) error {
	if outPending {
		return r.poller.ModReadWrite(r.pa, false)
	}
	return r.poller.ModRead(r.pa, false)
}
