package protocol

// InitProducerId (key 22), versions 0–5.
//
// Behaviour: forwarded as bytes unless a hook intercepts it (the tee fences the held rows of a
// transactional id's older epochs once the coordinator answers), in which case the request and
// its response are decoded. The maximum is clamped to what kmsg can decode, so a broker that
// offers a newer version (KIP-939's v6) is not advertised past what an intercepted request can
// be parsed at; without the clamp every idempotent producer choosing it would be disconnected.

func init() { register(22, 0, 5) }
