package config

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// TLS configures TLS on the client-facing listeners (bootstrap and every per-broker listener).
// Certificates are read at start and again on reload (SIGHUP), so rotated files take effect for
// new connections without a restart.
type TLS struct {
	// Enabled terminates TLS on every listener; clients then connect with security.protocol=ssl
	// (or sasl_ssl, SASL still passing through to the brokers).
	Enabled bool `koanf:"enabled"`
	// Cert and Key are the PEM files of the proxy's server certificate (chain) and private key.
	Cert string `koanf:"cert"`
	Key  string `koanf:"key"`
	// ClientCA is a PEM bundle of CAs that client certificates are verified against; setting it
	// asks clients for a certificate.
	ClientCA string `koanf:"client_ca"`
	// RequireClientCert refuses clients without a certificate signed by ClientCA (mTLS).
	RequireClientCert bool `koanf:"require_client_cert"`
}

// KafkaTLS configures TLS from the proxy to the upstream brokers (kafka.tls).
type KafkaTLS struct {
	// Enabled dials every broker with TLS.
	Enabled bool `koanf:"enabled"`
	// CA is a PEM bundle the brokers' certificates are verified against; empty uses the system pool.
	CA string `koanf:"ca"`
	// Cert and Key are the proxy's client certificate and key for brokers that require mTLS.
	Cert string `koanf:"cert"`
	Key  string `koanf:"key"`
	// ServerName overrides the name verified in broker certificates (default: each broker's host).
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. For tests only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

func registerTLSFlags(fs *pflag.FlagSet) {
	fs.Bool("tls.enabled", false, "terminate client TLS on every listener")
	fs.String("tls.cert", "", "PEM server certificate (chain) of the client-facing listeners")
	fs.String("tls.key", "", "PEM private key of tls.cert")
	fs.String("tls.client_ca", "", "PEM CA bundle that client certificates are verified against")
	fs.Bool("tls.require_client_cert", false, "refuse clients without a certificate from tls.client_ca (mTLS)")
	fs.Bool("kafka.tls.enabled", false, "dial the upstream brokers with TLS")
	fs.String("kafka.tls.ca", "", "PEM CA bundle for broker certificates (default: system roots)")
	fs.String("kafka.tls.cert", "", "PEM client certificate for brokers that require mTLS")
	fs.String("kafka.tls.key", "", "PEM private key of kafka.tls.cert")
	fs.String("kafka.tls.server_name", "", "name verified in broker certificates (default: the broker's host)")
	fs.Bool("kafka.tls.insecure_skip_verify", false, "accept any broker certificate (tests only)")
}

// validate checks the tls keys; files are read (and so checked) when the proxy starts.
func (t TLS) validate() []error {
	var errs []error
	if !t.Enabled {
		if t.Cert != "" || t.Key != "" || t.ClientCA != "" || t.RequireClientCert {
			errs = append(errs, errors.New("tls.enabled: tls.cert, tls.key, tls.client_ca or tls.require_client_cert are set but tls.enabled is false"))
		}
		return errs
	}
	if t.Cert == "" || t.Key == "" {
		errs = append(errs, errors.New("tls.cert: tls.enabled needs both tls.cert and tls.key"))
	}
	if t.RequireClientCert && t.ClientCA == "" {
		errs = append(errs, errors.New("tls.require_client_cert: needs tls.client_ca to verify client certificates against"))
	}
	return errs
}

// validate checks the kafka.tls keys.
func (t KafkaTLS) validate() []error {
	var errs []error
	if !t.Enabled {
		if t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != "" || t.InsecureSkipVerify {
			errs = append(errs, errors.New("kafka.tls.enabled: kafka.tls settings are present but kafka.tls.enabled is false"))
		}
		return errs
	}
	if (t.Cert == "") != (t.Key == "") {
		errs = append(errs, fmt.Errorf("kafka.tls.cert: set both kafka.tls.cert and kafka.tls.key for mTLS to brokers, or neither"))
	}
	return errs
}
