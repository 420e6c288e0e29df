package protocol

// ShareAcknowledge (key 79, KIP-932 share groups): not supported, dropped from the ApiVersions
// answer.
//
// Why: every version of the response carries node_endpoints (partition leaders' host and port)
// in its body, which forwarded bytes would leak to clients; without ShareFetch (78, also
// dropped) a client has nothing to acknowledge anyway. The empty range makes ClampApiVersions
// drop the key.

func init() { register(79, 0, -1) }
