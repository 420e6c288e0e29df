package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawBatch encodes a record batch header with the given attributes and record count around an
// arbitrary body; UncompressedRecords reads headers only.
func rawBatch(attributes int16, records int32) []byte {
	b := kmsg.RecordBatch{Magic: 2, Attributes: attributes, NumRecords: records, Records: []byte("body-of-the-batch")}
	raw := b.AppendTo(nil)
	// AppendTo leaves Length as given; set it to what follows the length field.
	n := len(raw) - 12
	raw[8], raw[9], raw[10], raw[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return raw
}

func TestUncompressedRecords(t *testing.T) {
	plain, lz4, txn := rawBatch(0, 3), rawBatch(3, 1), rawBatch(batchTransactional, 5)
	legacy := append([]byte(nil), plain...)
	legacy[16] = 1
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name    string
		records []byte
		n       int
		ok      bool
	}{
		{"empty", nil, 0, true},
		{"one uncompressed", plain, 3, true},
		{"uncompressed and transactional", cat(plain, txn), 8, true},
		{"uncompressed then lz4", cat(plain, lz4), 3, false},
		{"lz4", lz4, 0, false},
		{"truncated header", plain[:60], 0, false},
		{"length past the end", plain[:len(plain)-1], 0, false},
		{"magic 1", legacy, 0, false},
		{"negative count", rawBatch(0, -1), 0, false},
	}
	for _, c := range cases {
		if n, ok := UncompressedRecords(c.records); n != c.n || ok != c.ok {
			t.Errorf("%s: UncompressedRecords = %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
}
