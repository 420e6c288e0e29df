package protocol

// SaslHandshake (key 17), versions 0–1.
//
// Behaviour: requests and responses pass through as bytes (SASL is between client and broker).
//
// Per-version notes:
//   - The advertised minimum is 0 even when the broker's is 1 (kfake advertises 1–1).
//     librdkafka (at least up to 2.x, incl. Debian's 2.0.2 in kcat and python3-confluent-kafka)
//     enables SASL only when the broker's SaslHandshake range overlaps [0, 0], then sends the
//     highest version in [0, 1] that the broker supports — v1 here — so lowering the minimum
//     makes it authenticate against v1-only brokers instead of failing with "SASL Handshake not
//     supported by broker". Real Kafka (4.x included) supports 0–1, where nothing changes. A
//     client that really sends v0 to a v1-only broker is refused by the broker, as it would be
//     without the proxy.

func init() {
	register(17, 0, 1)
	advertiseMin(17)
}
