package protocol

// ShareFetch (key 78, KIP-932 share groups): not supported, dropped from the ApiVersions answer.
//
// Why: every version of the response carries node_endpoints (host and port of partition leaders,
// as in KIP-951) in its body, not in a tagged field, so forwarding it as bytes would hand the
// client upstream broker addresses. Rewriting it means re-encoding the fetched record sets, which
// the proxy avoids for Fetch as well (see 01_fetch.go). Registering the key with an empty range
// makes ClampApiVersions drop it, so clients never send it and use classic or KIP-848 groups.

func init() { register(78, 0, -1) }
