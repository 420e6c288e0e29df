package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// Operational defaults.
const (
	DefaultAdminListen  = "127.0.0.1:9644"
	DefaultDrainTimeout = 30 * time.Second
)

// Admin is the HTTP listener for /metrics, /livez, /readyz and (optionally) /debug/pprof/.
type Admin struct {
	// Listen is the admin HTTP address (host:port); empty disables the admin listener.
	Listen string `koanf:"listen"`
	// Pprof exposes net/http/pprof under /debug/pprof/ on the admin listener.
	Pprof bool `koanf:"pprof"`
}

// Shutdown configures how the proxy stops on SIGTERM/SIGINT.
type Shutdown struct {
	// DrainTimeout bounds the drain: the proxy stops accepting connections and reading new
	// requests, waits up to this long for requests in flight (including their OpenMLDB writes)
	// to be answered, then closes every connection.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
}

func registerOpsFlags(fs *pflag.FlagSet) {
	fs.String("admin.listen", DefaultAdminListen, "admin HTTP address for /metrics, /livez, /readyz (empty: disabled)")
	fs.Bool("admin.pprof", false, "serve /debug/pprof/ on the admin listener")
	fs.Duration("shutdown.drain_timeout", DefaultDrainTimeout, "longest wait for in-flight requests on SIGTERM before closing connections")
	fs.Bool("log.payloads", false, "include record values in the log line of a rejected record batch")
}

// validateOps checks the admin and shutdown keys.
func (c *Config) validateOps() []error {
	var errs []error
	if c.Admin.Listen != "" {
		_, port, err := net.SplitHostPort(c.Admin.Listen)
		if err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %q is not host:port: %w", c.Admin.Listen, err))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("admin.listen: port %q must be 0-65535", port))
		} else if c.Admin.Listen == c.Listen {
			errs = append(errs, fmt.Errorf("admin.listen: %q is also the Kafka listen address", c.Admin.Listen))
		}
	} else if c.Admin.Pprof {
		errs = append(errs, errors.New("admin.pprof: needs admin.listen"))
	}
	if c.Shutdown.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown.drain_timeout: %s must not be negative", c.Shutdown.DrainTimeout))
	}
	return errs
}
