//go:build !linux

package proxy

import (
	"errors"

	"github.com/panjf2000/gnet/v2"
)

// readPauser is only implemented on Linux; elsewhere sessions stop consuming input at a bound and
// close connections whose buffered input passes pausedInboundCap.
type readPauser struct{}

func newReadPauser(gnet.Conn) (*readPauser, error) {
	return nil, errors.New("read pause: only supported on linux")
}

func (r *readPauser) pause(bool) error  { return nil }
func (r *readPauser) resume(bool) error { return nil }
