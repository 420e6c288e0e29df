package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawBatch encodes a record batch header with the given attributes around an arbitrary body;
// AnyCompressed reads headers only.
func rawBatch(attributes int16) []byte {
	b := kmsg.RecordBatch{Magic: 2, Attributes: attributes, NumRecords: 1, Records: []byte("body-of-the-batch")}
	raw := b.AppendTo(nil)
	// AppendTo leaves Length as given; set it to what follows the length field.
	n := len(raw) - 12
	raw[8], raw[9], raw[10], raw[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return raw
}

func TestAnyCompressed(t *testing.T) {
	plain, lz4, txn := rawBatch(0), rawBatch(3), rawBatch(batchTransactional)
	legacy := append([]byte(nil), plain...)
	legacy[16] = 1
	cases := []struct {
		name    string
		records []byte
		want    bool
	}{
		{"empty", nil, false},
		{"one uncompressed", plain, false},
		{"transactional, uncompressed", txn, false},
		{"uncompressed then lz4", append(append([]byte(nil), plain...), lz4...), true},
		{"lz4", lz4, true},
		{"truncated header", plain[:20], true},
		{"length past the end", plain[:len(plain)-1], true},
		{"magic 1", legacy, true},
	}
	for _, c := range cases {
		if got := AnyCompressed(c.records); got != c.want {
			t.Errorf("%s: AnyCompressed = %v, want %v", c.name, got, c.want)
		}
	}
}
