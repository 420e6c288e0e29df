package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record batch attribute bits (Kafka message format v2).
const (
	batchCodecMask     = 0x07
	batchTransactional = 0x10
	batchControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Batch is one decoded record batch of a Produce partition. Records alias the decompressed
// buffer, which is private to the batch: the bytes forwarded to the broker are never touched.
type Batch struct {
	ProducerID    int64
	ProducerEpoch int16
	// FirstSequence is the idempotent sequence of the first record (-1 when not idempotent).
	FirstSequence int32
	Transactional bool
	// Control batches carry transaction markers, never user data.
	Control bool
	Codec   kgo.CompressionCodecType
	Records []Record
}

// Record is one record of a batch. Value is nil for a tombstone (null value).
type Record struct {
	OffsetDelta int32
	Key         []byte
	Value       []byte
	Headers     []kmsg.Header
}

// ErrLegacyMessageFormat is returned for magic 0/1 message sets, which carry no producer id or
// sequence and which Kafka 4 brokers no longer accept.
var ErrLegacyMessageFormat = errors.New("message format v0/v1 (magic < 2) is not supported")

// DecodeBatches decodes every record batch in a Produce partition's Records field, checking each
// batch's CRC and decompressing it with dec. It fails on the first malformed batch, naming it.
func DecodeBatches(records []byte, dec kgo.Decompressor) ([]Batch, error) {
	var out []Batch
	for i := 0; len(records) > 0; i++ {
		if len(records) < 17 {
			return nil, fmt.Errorf("batch %d: truncated header (%d bytes)", i, len(records))
		}
		if magic := records[16]; magic != 2 {
			return nil, fmt.Errorf("batch %d: %w (magic %d)", i, ErrLegacyMessageFormat, magic)
		}
		length := int(int32(binary.BigEndian.Uint32(records[8:12])))
		if length < 49 || 12+length > len(records) {
			return nil, fmt.Errorf("batch %d: length %d does not fit the %d bytes left", i, length, len(records))
		}
		raw := records[:12+length]
		records = records[12+length:]

		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			return nil, fmt.Errorf("batch %d: %w", i, err)
		}
		if crc := crc32.Checksum(raw[21:], castagnoli); crc != uint32(b.CRC) {
			return nil, fmt.Errorf("batch %d: CRC mismatch (header %08x, computed %08x)", i, uint32(b.CRC), crc)
		}
		codec := kgo.CompressionCodecType(b.Attributes & batchCodecMask)
		data, err := dec.Decompress(b.Records, codec)
		if err != nil {
			return nil, fmt.Errorf("batch %d: decompress codec %d: %w", i, codec, err)
		}
		batch := Batch{
			ProducerID:    b.ProducerID,
			ProducerEpoch: b.ProducerEpoch,
			FirstSequence: b.FirstSequence,
			Transactional: b.Attributes&batchTransactional != 0,
			Control:       b.Attributes&batchControl != 0,
			Codec:         codec,
			Records:       make([]Record, 0, b.NumRecords),
		}
		for n := 0; n < int(b.NumRecords); n++ {
			l, w := binary.Varint(data)
			if w <= 0 || l < 0 || int(l) > len(data)-w {
				return nil, fmt.Errorf("batch %d record %d: bad length prefix", i, n)
			}
			var r kmsg.Record
			if err := r.ReadFrom(data[:w+int(l)]); err != nil {
				return nil, fmt.Errorf("batch %d record %d: %w", i, n, err)
			}
			data = data[w+int(l):]
			batch.Records = append(batch.Records, Record{OffsetDelta: r.OffsetDelta, Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
		if len(data) != 0 {
			return nil, fmt.Errorf("batch %d: %d bytes after the %d records it declares", i, len(data), b.NumRecords)
		}
		out = append(out, batch)
	}
	return out, nil
}

// UncompressedRecords counts the records the batches of a Produce partition's Records field
// declare, reading only the batch headers; ok is false when a batch is compressed or the bytes
// are not well-formed batches, so a caller choosing a cheap path for small uncompressed data
// never takes it for them (DecodeBatches then names any fault).
func UncompressedRecords(records []byte) (n int, ok bool) {
	for len(records) > 0 {
		if len(records) < 61 || records[16] != 2 {
			return n, false
		}
		length := int(int32(binary.BigEndian.Uint32(records[8:12])))
		if length < 49 || 12+length > len(records) || records[22]&batchCodecMask != 0 {
			return n, false
		}
		count := int(int32(binary.BigEndian.Uint32(records[57:61])))
		if count < 0 {
			return n, false
		}
		n += count
		records = records[12+length:]
	}
	return n, true
}
