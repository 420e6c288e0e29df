package main

import (
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/proxy"
)

// serverTLS maps the tls keys onto the proxy's client TLS; nil when disabled.
func serverTLS(t config.TLS) *proxy.ServerTLS {
	if !t.Enabled {
		return nil
	}
	return &proxy.ServerTLS{CertFile: t.Cert, KeyFile: t.Key, ClientCAFile: t.ClientCA, RequireClientCert: t.RequireClientCert}
}

// upstreamTLS maps the kafka.tls keys onto the proxy's broker TLS; nil when disabled.
func upstreamTLS(t config.KafkaTLS) *proxy.UpstreamTLS {
	if !t.Enabled {
		return nil
	}
	return &proxy.UpstreamTLS{CAFile: t.CA, CertFile: t.Cert, KeyFile: t.Key, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// upstreamSASL maps the kafka.sasl keys onto the mechanism of the proxy's own broker connections;
// nil when no mechanism is set. config.Load has checked the mechanism's name.
func upstreamSASL(s config.KafkaSASL) sasl.Mechanism {
	switch s.Mechanism {
	case config.SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case config.SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case config.SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	}
	return nil
}
