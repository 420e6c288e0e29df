package openmldb

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
)

// ScanTable writes every row of db.table to w, one per line: a JSON object with keys in column
// order (dates YYYY-MM-DD, timestamps epoch ms, NULL as null), or with raw the stored bytes in hex.
func ScanTable(ctx context.Context, c *Client, db, table string, raw bool, w io.Writer) error {
	t, err := c.Table(db, table)
	if err != nil {
		if rerr := c.Refresh(ctx); rerr != nil {
			return fmt.Errorf("scan %s.%s: %w (refresh: %v)", db, table, err, rerr)
		}
		if t, err = c.Table(db, table); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	bw := bufio.NewWriter(w)
	row := make(Row, len(t.Columns))
	var line []byte
	err = c.Traverse(ctx, t, func(b []byte) error {
		line = line[:0]
		if raw {
			line = hex.AppendEncode(line, b)
		} else {
			if err := DecodeRowInto(row, t.Columns, b); err != nil {
				return err
			}
			line = AppendRowJSON(line, t.Columns, row)
		}
		line = append(line, '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return fmt.Errorf("scan %s.%s: %w", db, table, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("scan %s.%s: write: %w", db, table, err)
	}
	return nil
}

// AppendRowJSON appends row as a JSON object whose keys follow the column order.
func AppendRowJSON(dst []byte, cols []Column, row Row) []byte {
	dst = append(dst, '{')
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, c.Name)
		dst = append(dst, ':')
		v := row[i]
		if !v.Valid {
			dst = append(dst, "null"...)
			continue
		}
		switch {
		case c.Type.IsString():
			dst = appendJSONString(dst, v.S)
		case c.Type == TypeBool:
			dst = strconv.AppendBool(dst, v.B)
		case c.Type == TypeDate:
			y, m, d := UnpackDate(int32(v.I))
			dst = fmt.Appendf(dst, "\"%04d-%02d-%02d\"", y, m, d)
		case c.Type == TypeFloat || c.Type == TypeDouble:
			bits := 64
			if c.Type == TypeFloat {
				bits = 32
			}
			if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
				dst = appendJSONString(dst, strconv.FormatFloat(v.F, 'g', -1, bits))
			} else {
				dst = strconv.AppendFloat(dst, v.F, 'g', -1, bits)
			}
		default:
			dst = strconv.AppendInt(dst, v.I, 10)
		}
	}
	return append(dst, '}')
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // marshaling a string cannot fail
	return append(dst, b...)
}
