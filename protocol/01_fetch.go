package protocol

// Fetch (key 1), versions 0–15.
//
// Behaviour: requests and responses are always opaque bytes; the proxy never decodes a Fetch.
//
// Per-version notes:
//   - The maximum is clamped to 15 because Fetch v16+ responses may carry KIP-951 node_endpoints
//     (broker addresses). At v15 and below the field cannot appear, so record sets are never
//     re-encoded. Clients fall back to leader discovery through Metadata, which is rewritten.
//   - The broker's minimum is kept.

func init() { register(1, 0, 15) }
