package openmldbtest

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/commonpb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/typepb"
)

// column is one schema column as the decoder needs it.
type column struct {
	name    string
	typ     typepb.DataType
	notNull bool
}

// cell is one decoded value. Integers, dates (packed) and timestamps live in i, floats in f (float
// columns are widened), strings in s, bools in b.
type cell struct {
	null bool
	i    int64
	f    float64
	s    string
	b    bool
}

// fixedSize is the width of a column in the row's fixed area; 0 for strings.
func fixedSize(t typepb.DataType) (int, error) {
	switch t {
	case typepb.DataType_kBool:
		return 1, nil
	case typepb.DataType_kSmallInt:
		return 2, nil
	case typepb.DataType_kInt, typepb.DataType_kFloat, typepb.DataType_kDate:
		return 4, nil
	case typepb.DataType_kBigInt, typepb.DataType_kDouble, typepb.DataType_kTimestamp:
		return 8, nil
	case typepb.DataType_kVarchar, typepb.DataType_kString:
		return 0, nil
	}
	return 0, fmt.Errorf("type %v is not supported by the row codec", t)
}

func isStringType(t typepb.DataType) bool {
	return t == typepb.DataType_kVarchar || t == typepb.DataType_kString
}

// columnsFromDesc converts a TableInfo's column_desc; schema (0.9+) supersedes data_type/not_null.
func columnsFromDesc(descs []*commonpb.ColumnDesc) ([]column, error) {
	cols := make([]column, len(descs))
	for i, d := range descs {
		c := column{name: d.GetName(), typ: d.GetDataType(), notNull: d.GetNotNull()}
		if s := d.GetSchema(); s != nil {
			c.typ = s.GetType()
			c.notNull = s.GetNotNull()
		}
		if _, err := fixedSize(c.typ); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		cols[i] = c
	}
	return cols, nil
}

// addrLen is OpenMLDB's GetAddrLength: the width of string offsets depends on the total row size.
func addrLen(size int) int {
	switch {
	case size <= 0xff:
		return 1
	case size <= 0xffff:
		return 2
	case size <= 0xffffff:
		return 3
	}
	return 4
}

// readOffset reads one string offset; the 3-byte form is big-endian, the others little-endian.
func readOffset(b []byte, w int) int {
	switch w {
	case 1:
		return int(b[0])
	case 2:
		return int(binary.LittleEndian.Uint16(b))
	case 3:
		return int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	}
	return int(binary.LittleEndian.Uint32(b))
}

// decodeRow decodes an encoded row strictly: FVersion 1, the expected schema version, a size
// header equal to len(buf), every field inside the buffer, strings contiguous and ending exactly
// at Size, bools 0 or 1, dates well formed, and NOT NULL columns present.
func decodeRow(cols []column, version byte, buf []byte) ([]cell, error) {
	return decodeRowInto(nil, cols, version, buf)
}

// decodeRowInto is decodeRow reusing dst's storage for the cells when it is large enough.
func decodeRowInto(dst []cell, cols []column, version byte, buf []byte) ([]cell, error) {
	n := len(cols)
	bitmapLen := (n + 7) / 8
	if len(buf) < 6+bitmapLen {
		return nil, fmt.Errorf("row of %d bytes is shorter than its header (%d)", len(buf), 6+bitmapLen)
	}
	if buf[0] != 1 {
		return nil, fmt.Errorf("row FVersion %d, want 1", buf[0])
	}
	if buf[1] != version {
		return nil, fmt.Errorf("row SVersion %d, want %d", buf[1], version)
	}
	size := int(binary.LittleEndian.Uint32(buf[2:6]))
	if size != len(buf) {
		return nil, fmt.Errorf("row size header %d != value length %d", size, len(buf))
	}
	bitmap := buf[6 : 6+bitmapLen]
	var cells []cell
	if cap(dst) >= n {
		cells = dst[:n]
		clear(cells)
	} else {
		cells = make([]cell, n)
	}
	pos := 6 + bitmapLen
	nStr := 0
	for i, c := range cols {
		w, err := fixedSize(c.typ)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		null := bitmap[i>>3]&(1<<(i&7)) != 0
		if null && c.notNull {
			return nil, fmt.Errorf("column %q is NOT NULL but the row has it NULL", c.name)
		}
		cells[i].null = null
		if w == 0 {
			nStr++
			continue
		}
		if pos+w > size {
			return nil, fmt.Errorf("column %q: fixed field at %d+%d past row size %d", c.name, pos, w, size)
		}
		f := buf[pos : pos+w]
		pos += w
		if null {
			continue
		}
		switch c.typ {
		case typepb.DataType_kBool:
			if f[0] > 1 {
				return nil, fmt.Errorf("column %q: bool byte 0x%02x, want 0x00 or 0x01", c.name, f[0])
			}
			cells[i].b = f[0] == 1
		case typepb.DataType_kSmallInt:
			cells[i].i = int64(int16(binary.LittleEndian.Uint16(f)))
		case typepb.DataType_kInt:
			cells[i].i = int64(int32(binary.LittleEndian.Uint32(f)))
		case typepb.DataType_kDate:
			v := int32(binary.LittleEndian.Uint32(f))
			if err := checkDate(v); err != nil {
				return nil, fmt.Errorf("column %q: %w", c.name, err)
			}
			cells[i].i = int64(v)
		case typepb.DataType_kBigInt, typepb.DataType_kTimestamp:
			cells[i].i = int64(binary.LittleEndian.Uint64(f))
		case typepb.DataType_kFloat:
			cells[i].f = float64(math.Float32frombits(binary.LittleEndian.Uint32(f)))
		case typepb.DataType_kDouble:
			cells[i].f = math.Float64frombits(binary.LittleEndian.Uint64(f))
		}
	}
	if nStr == 0 {
		if pos != size {
			return nil, fmt.Errorf("row has %d trailing bytes after the fixed area", size-pos)
		}
		return cells, nil
	}
	w := addrLen(size)
	tableEnd := pos + w*nStr
	if tableEnd > size {
		return nil, fmt.Errorf("string offset table (%d x %d bytes at %d) past row size %d", nStr, w, pos, size)
	}
	var offBuf [16]int
	offsets := offBuf[:0]
	if nStr > len(offBuf) {
		offsets = make([]int, nStr)
	} else {
		offsets = offBuf[:nStr]
	}
	for k := range offsets {
		offsets[k] = readOffset(buf[pos+k*w:], w)
	}
	// Strings are contiguous from the end of the offset table; a NULL string's entry equals the
	// running position, except that the first string column's entry may be left 0 when NULL.
	cursor := tableEnd
	k := 0
	for i, c := range cols {
		if !isStringType(c.typ) {
			continue
		}
		off := offsets[k]
		if cells[i].null {
			if off != cursor && !(k == 0 && off == 0) {
				return nil, fmt.Errorf("column %q (NULL string): offset %d, want %d", c.name, off, cursor)
			}
			k++
			continue
		}
		if off != cursor {
			return nil, fmt.Errorf("column %q: string offset %d, want %d (strings must be contiguous)", c.name, off, cursor)
		}
		end := size
		if k+1 < nStr {
			end = offsets[k+1]
		}
		if end < off || end > size {
			return nil, fmt.Errorf("column %q: string end %d outside [%d, %d]", c.name, end, off, size)
		}
		cells[i].s = string(buf[off:end])
		cursor = end
		k++
	}
	if cursor != size {
		return nil, fmt.Errorf("string area ends at %d but row size is %d", cursor, size)
	}
	return cells, nil
}

// checkDate validates a packed date: years 1900-9999, month 1-12, day 1-31 (no per-month check,
// like OpenMLDB).
func checkDate(v int32) error {
	year := int(v>>16) + 1900
	month := int(v>>8&0xff) + 1
	day := int(v & 0xff)
	if v < 0 || year > 9999 || month > 12 || day < 1 || day > 31 {
		return fmt.Errorf("invalid packed date 0x%08x (year %d month %d day %d)", uint32(v), year, month, day)
	}
	return nil
}
