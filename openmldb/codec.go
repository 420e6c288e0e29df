package openmldb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// rowHeaderSize is FVersion(1) + SVersion(1) + Size(4).
const rowHeaderSize = 6

// SchemaVersion1 is the SVersion every SDK writes: the row is encoded over TableInfo.column_desc.
const SchemaVersion1 = 1

// maxRowSize bounds an encoded row; the tablet rejects bodies above brpc's 64 MiB anyway.
const maxRowSize = math.MaxUint32

// ErrRow is wrapped by every row encoding, decoding and validation error.
var ErrRow = errors.New("invalid row")

// ColumnError names the column a row was rejected for and why.
type ColumnError struct {
	Column string
	Reason string
}

// Error implements error.
func (e *ColumnError) Error() string { return fmt.Sprintf("column %s: %s", e.Column, e.Reason) }

// Unwrap lets errors.Is(err, ErrRow) match.
func (e *ColumnError) Unwrap() error { return ErrRow }

func fixedSize(t DataType) int {
	switch t {
	case TypeBool:
		return 1
	case TypeSmallInt:
		return 2
	case TypeInt, TypeFloat, TypeDate:
		return 4
	case TypeBigInt, TypeDouble, TypeTimestamp:
		return 8
	}
	return 0
}

// addrLen is GetAddrLength: the width of a string offset entry for a row of the given total size.
func addrLen(size uint64) int {
	switch {
	case size <= math.MaxUint8:
		return 1
	case size <= math.MaxUint16:
		return 2
	case size <= 1<<24-1:
		return 3
	}
	return 4
}

// AppendRow appends the encoding of row (schema version 1) to dst and returns the extended slice.
// It checks what the encoding itself needs (NOT NULL, value ranges, valid dates); the write-time
// rules that depend on indexes (TS columns, non-negative timestamps) are in ValidateRow.
// With a dst of sufficient capacity it does not allocate.
func AppendRow(dst []byte, cols []Column, row Row) ([]byte, error) {
	return AppendRowVersion(dst, cols, row, SchemaVersion1)
}

// AppendRowVersion is AppendRow with an explicit SVersion byte.
func AppendRowVersion(dst []byte, cols []Column, row Row, schemaVersion uint8) ([]byte, error) {
	if len(row) != len(cols) {
		return dst, fmt.Errorf("%w: %d values for %d columns", ErrRow, len(row), len(cols))
	}
	base := rowHeaderSize + (len(cols)+7)/8
	strCols, strBytes := 0, 0
	for i := range cols {
		c := &cols[i]
		v := &row[i]
		if !v.Valid {
			if c.NotNull {
				return dst, &ColumnError{Column: c.Name, Reason: "NULL in a NOT NULL column"}
			}
		} else if c.Type == TypeSmallInt || c.Type == TypeInt || c.Type == TypeDate {
			if err := checkValue(c, v); err != nil {
				return dst, err
			}
		}
		if c.Type.IsString() {
			strCols++
			if v.Valid {
				strBytes += len(v.S)
			}
			continue
		}
		fs := fixedSize(c.Type)
		if fs == 0 {
			return dst, &ColumnError{Column: c.Name, Reason: fmt.Sprintf("unsupported type %v", c.Type)}
		}
		base += fs
	}
	size := uint64(base)
	aw := 0
	if strCols > 0 {
		for aw = 1; aw <= 4; aw++ {
			size = uint64(base) + uint64(strBytes) + uint64(aw*strCols)
			if addrLen(size) <= aw {
				break
			}
		}
		if aw > 4 || size > maxRowSize {
			return dst, fmt.Errorf("%w: row of %d bytes is too large", ErrRow, size)
		}
	}
	start := len(dst)
	need := start + int(size)
	if cap(dst) < need {
		grown := make([]byte, start, need+need/4)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:need]
	b := dst[start:]
	clear(b)
	b[0] = 1
	b[1] = schemaVersion
	binary.LittleEndian.PutUint32(b[2:], uint32(size))
	bitmap := b[rowHeaderSize : rowHeaderSize+(len(cols)+7)/8]
	for i := range bitmap {
		bitmap[i] = 0xff
	}
	pos := rowHeaderSize + len(bitmap)
	for i := range cols {
		v := &row[i]
		if v.Valid {
			bitmap[i>>3] &^= 1 << (i & 7)
		}
		t := cols[i].Type
		if t.IsString() {
			continue
		}
		if v.Valid {
			switch t {
			case TypeBool:
				if v.B {
					b[pos] = 1
				}
			case TypeSmallInt:
				binary.LittleEndian.PutUint16(b[pos:], uint16(int16(v.I)))
			case TypeInt, TypeDate:
				binary.LittleEndian.PutUint32(b[pos:], uint32(int32(v.I)))
			case TypeBigInt, TypeTimestamp:
				binary.LittleEndian.PutUint64(b[pos:], uint64(v.I))
			case TypeFloat:
				binary.LittleEndian.PutUint32(b[pos:], math.Float32bits(float32(v.F)))
			case TypeDouble:
				binary.LittleEndian.PutUint64(b[pos:], math.Float64bits(v.F))
			}
		}
		switch t {
		case TypeBool:
			pos++
		case TypeSmallInt:
			pos += 2
		case TypeInt, TypeDate, TypeFloat:
			pos += 4
		default:
			pos += 8
		}
	}
	if strCols == 0 {
		return dst, nil
	}
	off := pos
	strPos := pos + aw*strCols
	k := 0
	for i := range cols {
		if !cols[i].Type.IsString() {
			continue
		}
		v := &row[i]
		// The C++ RowBuilder leaves the first string's entry 0 when it is NULL and gives any
		// later NULL string the current position; copying that keeps put_if_absent byte-identical.
		if v.Valid || k > 0 {
			putOffset(b[off:], aw, uint32(strPos))
		}
		if v.Valid {
			strPos += copy(b[strPos:], v.S)
		}
		off += aw
		k++
	}
	return dst, nil
}

func putOffset(b []byte, width int, v uint32) {
	switch width {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 3: // the only big-endian width (SetStrOffset)
		b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
	default:
		binary.LittleEndian.PutUint32(b, v)
	}
}

func getOffset(b []byte, width int) uint32 {
	switch width {
	case 1:
		return uint32(b[0])
	case 2:
		return uint32(binary.LittleEndian.Uint16(b))
	case 3:
		return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	}
	return binary.LittleEndian.Uint32(b)
}

// checkValue rejects values the column type cannot hold. Reasons are fixed strings so the
// encoding path does not allocate unless it fails.
func checkValue(c *Column, v *Value) error {
	switch c.Type {
	case TypeSmallInt:
		if v.I < math.MinInt16 || v.I > math.MaxInt16 {
			return &ColumnError{Column: c.Name, Reason: fmt.Sprintf("%d out of SMALLINT range", v.I)}
		}
	case TypeInt:
		if v.I < math.MinInt32 || v.I > math.MaxInt32 {
			return &ColumnError{Column: c.Name, Reason: fmt.Sprintf("%d out of INT range", v.I)}
		}
	case TypeDate:
		if v.I < math.MinInt32 || v.I > math.MaxInt32 {
			return &ColumnError{Column: c.Name, Reason: fmt.Sprintf("packed date %d out of range", v.I)}
		}
		y, m, d := UnpackDate(int32(v.I))
		if y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31 || v.I>>16 < 0 {
			return &ColumnError{Column: c.Name, Reason: fmt.Sprintf("date %04d-%02d-%02d outside 1900-01-01..9999-12-31", y, m, d)}
		}
	}
	return nil
}

// ValidateRow applies the checks the OpenMLDB SDK makes before sending, beyond what AppendRow
// checks: TS columns of live indexes must be non-NULL and ≥ 0, timestamps must be ≥ 0.
func ValidateRow(cols []Column, tsCols []int, row Row) error {
	if len(row) != len(cols) {
		return fmt.Errorf("%w: %d values for %d columns", ErrRow, len(row), len(cols))
	}
	for i := range cols {
		if cols[i].Type == TypeTimestamp && row[i].Valid && row[i].I < 0 {
			return &ColumnError{Column: cols[i].Name, Reason: fmt.Sprintf("negative timestamp %d", row[i].I)}
		}
	}
	for _, i := range tsCols {
		if !row[i].Valid {
			return &ColumnError{Column: cols[i].Name, Reason: "NULL in an index TS column"}
		}
		if row[i].I < 0 {
			return &ColumnError{Column: cols[i].Name, Reason: fmt.Sprintf("negative value %d in an index TS column", row[i].I)}
		}
	}
	return nil
}

// DecodeRow decodes an encoded row over cols. Both bitmap conventions (padding bits 1 or 0) and
// every offset width are accepted; the Size header must equal len(b).
func DecodeRow(cols []Column, b []byte) (Row, error) {
	row := make(Row, len(cols))
	if err := DecodeRowInto(row, cols, b); err != nil {
		return nil, err
	}
	return row, nil
}

// DecodeRowInto is DecodeRow into a caller-provided row of len(cols) values.
func DecodeRowInto(row Row, cols []Column, b []byte) error {
	if len(row) != len(cols) {
		return fmt.Errorf("%w: decode into %d values for %d columns", ErrRow, len(row), len(cols))
	}
	bitmapLen := (len(cols) + 7) / 8
	if len(b) < rowHeaderSize+bitmapLen {
		return fmt.Errorf("%w: %d bytes is shorter than the header", ErrRow, len(b))
	}
	if b[0] != 1 {
		return fmt.Errorf("%w: FVersion %d, want 1", ErrRow, b[0])
	}
	size := binary.LittleEndian.Uint32(b[2:])
	if uint64(size) != uint64(len(b)) {
		return fmt.Errorf("%w: size header %d but %d bytes", ErrRow, size, len(b))
	}
	bitmap := b[rowHeaderSize : rowHeaderSize+bitmapLen]
	pos := rowHeaderSize + bitmapLen
	strCols := 0
	for i := range cols {
		t := cols[i].Type
		if t.IsString() {
			strCols++
			continue
		}
		fs := fixedSize(t)
		if fs == 0 {
			return &ColumnError{Column: cols[i].Name, Reason: fmt.Sprintf("unsupported type %v", t)}
		}
		if pos+fs > len(b) {
			return fmt.Errorf("%w: row of %d bytes too short for column %s", ErrRow, len(b), cols[i].Name)
		}
		if bitmap[i>>3]&(1<<(i&7)) != 0 {
			row[i] = Value{}
			pos += fs
			continue
		}
		v := Value{Valid: true}
		switch t {
		case TypeBool:
			v.B = b[pos] == 1 // the tablet reads only 0x01 as true
		case TypeSmallInt:
			v.I = int64(int16(binary.LittleEndian.Uint16(b[pos:])))
		case TypeInt, TypeDate:
			v.I = int64(int32(binary.LittleEndian.Uint32(b[pos:])))
		case TypeBigInt, TypeTimestamp:
			v.I = int64(binary.LittleEndian.Uint64(b[pos:]))
		case TypeFloat:
			v.F = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[pos:])))
		case TypeDouble:
			v.F = math.Float64frombits(binary.LittleEndian.Uint64(b[pos:]))
		}
		row[i] = v
		pos += fs
	}
	if strCols == 0 {
		return nil
	}
	aw := addrLen(uint64(size))
	if pos+aw*strCols > len(b) {
		return fmt.Errorf("%w: row of %d bytes too short for its string offsets", ErrRow, len(b))
	}
	// Each string ends where the next non-NULL string starts (NULL entries may be 0), the last at Size.
	k := 0
	for i := range cols {
		if !cols[i].Type.IsString() {
			continue
		}
		if bitmap[i>>3]&(1<<(i&7)) != 0 {
			row[i] = Value{}
			k++
			continue
		}
		startOff := getOffset(b[pos+k*aw:], aw)
		end := size
		j := k + 1
		for ci := i + 1; ci < len(cols); ci++ {
			if !cols[ci].Type.IsString() {
				continue
			}
			if bitmap[ci>>3]&(1<<(ci&7)) == 0 {
				end = getOffset(b[pos+j*aw:], aw)
				break
			}
			j++
		}
		if startOff > end || end > size || int(startOff) < pos+aw*strCols {
			return fmt.Errorf("%w: column %s: bad string bounds %d..%d in %d bytes", ErrRow, cols[i].Name, startOff, end, size)
		}
		row[i] = Value{Valid: true, S: string(b[startOff:end])}
		k++
	}
	return nil
}
