package main

import (
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
