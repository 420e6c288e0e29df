// Package protocol is the Kafka wire layer of the proxy, on top of franz-go's kmsg: request and
// response headers, the ApiVersions clamp and the rewriting of broker addresses in responses.
//
// Every API key whose body the proxy parses has its own file named after the key (00_produce.go,
// 03_metadata.go, …). Each file states the versions it handles and registers that range in an init
// function, so the ApiVersions clamp is derived from the parsers rather than kept in a separate table.
// Keys without a file are opaque to the proxy and keep the broker's ranges.
package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// keyRange is the version range the proxy can parse for one API key.
type keyRange struct {
	min, max int16
	// lowerMin makes the advertised minimum this range's min even when the broker's is higher.
	lowerMin bool
}

// registry maps an API key to the versions the proxy parses. It is written only by init functions
// of the per-key files and is read-only afterwards.
var registry = map[int16]keyRange{}

// register records that the proxy parses versions min..max of key. Called from init only.
func register(key, min, max int16) {
	if _, dup := registry[key]; dup {
		panic("protocol: key registered twice: " + kmsg.NameForKey(key))
	}
	registry[key] = keyRange{min: min, max: max}
}

// advertiseMin makes the clamp advertise the registered minimum of key even when the broker's
// minimum is higher. Called from init only, after register.
func advertiseMin(key int16) {
	r := registry[key]
	r.lowerMin = true
	registry[key] = r
}

// Supported reports the version range the proxy parses for key; ok is false for keys the proxy
// treats as opaque bytes.
func Supported(key int16) (min, max int16, ok bool) {
	r, ok := registry[key]
	return r.min, r.max, ok
}

// flexFrom[key] is the first version of key that uses flexible (tagged) encoding, -1 when no known
// version does, for every key kmsg knows. Filled once at init from kmsg and read-only afterwards.
var flexFrom = buildFlexTable()

func buildFlexTable() map[int16]int16 {
	t := make(map[int16]int16)
	for k := int16(0); k < 2000; k++ {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		t[k] = -1
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				t[k] = v
				break
			}
		}
	}
	return t
}

// Flexible reports whether (key, version) uses flexible encoding (tagged fields in the request
// header and, except for ApiVersions, in the response header). known is false for keys kmsg does
// not know; their headers cannot be parsed past the client id.
func Flexible(key, version int16) (flexible, known bool) {
	from, ok := flexFrom[key]
	if !ok {
		return false, false
	}
	return from >= 0 && version >= from, true
}
