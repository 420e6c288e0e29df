package protocol

// EndTxn (key 26), versions 0–5.
//
// Behaviour: forwarded as bytes unless a hook intercepts it (the tee releases or drops held
// transactional rows on commit or abort), in which case the request is decoded. The maximum is
// clamped to what kmsg can decode so an intercepted request always parses.

func init() { register(26, 0, 5) }
