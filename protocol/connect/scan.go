package connect

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanner works on the raw record bytes with explicit positions: no reader, no token
// objects, no allocation unless a string has to be unescaped or kept.

// maxDepth bounds nesting so a hostile record cannot recurse without limit.
const maxDepth = 256

func syntaxErr(pos int, format string, args ...any) error {
	return &FieldError{Reason: fmt.Sprintf("invalid JSON at offset %d: %s", pos, fmt.Sprintf(format, args...))}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString reads the string starting at b[i] == '"'. It returns the content bounds (without
// quotes), whether it holds escapes, and the index after the closing quote. Escapes are checked
// for validity here so skipped strings are validated too.
func scanString(b []byte, i int) (start, end int, escaped bool, next int, err error) {
	i++
	start = i
	for i < len(b) {
		if plainStringByte[b[i]] {
			i++
			for i < len(b) && plainStringByte[b[i]] { // the common run of ordinary characters
				i++
			}
			continue
		}
		c := b[i]
		switch {
		case c == '"':
			return start, i, escaped, i + 1, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, 0, false, 0, syntaxErr(i, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, 0, false, 0, syntaxErr(i, "unterminated string")
				}
				for _, h := range b[i+2 : i+6] {
					if unhex(h) < 0 {
						return 0, 0, false, 0, syntaxErr(i, "invalid \\u escape")
					}
				}
				i += 6
			default:
				return 0, 0, false, 0, syntaxErr(i, "invalid escape \\%c", b[i+1])
			}
		case c < 0x20:
			return 0, 0, false, 0, syntaxErr(i, "control character in string")
		default:
			i++
		}
	}
	return 0, 0, false, 0, syntaxErr(start-1, "unterminated string")
}

// plainStringByte marks the bytes a string scan steps over without a second look: everything but
// the quote, the backslash and control characters.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// stringValue turns string content (as bounded by scanString) into a Go string, decoding escapes
// and refusing invalid UTF-8.
func stringValue(raw []byte, escaped bool) (string, error) {
	if !escaped {
		if !utf8.Valid(raw) {
			return "", &FieldError{Reason: "invalid UTF-8 in string"}
		}
		return string(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			out = append(out, raw[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(raw[i+2:])); pair != utf8.RuneError {
						out = utf8.AppendRune(out, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		}
		i += 2
	}
	if !utf8.Valid(out) {
		return "", &FieldError{Reason: "invalid UTF-8 in string"}
	}
	return string(out), nil
}

func hex4(b []byte) rune {
	return rune(unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3]))
}

// scanNumber validates the JSON number at b[i] and returns its end and whether it is written as
// an integer (no fraction, no exponent).
func scanNumber(b []byte, i int) (end int, integral bool, err error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, false, syntaxErr(start, "invalid number")
	}
	integral = true
	if i < len(b) && b[i] == '.' {
		integral = false
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, syntaxErr(start, "invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integral = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, syntaxErr(start, "invalid number")
		}
	}
	return i, integral, nil
}

// literal checks that b[i:] starts with word (true, false, null) and returns the index after it.
func literal(b []byte, i int, word string) (int, error) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return 0, syntaxErr(i, "invalid literal")
	}
	return i + len(word), nil
}

// skipValue validates and skips the JSON value at b[i] (after whitespace).
func skipValue(b []byte, i int, depth int) (int, error) {
	if depth > maxDepth {
		return 0, syntaxErr(i, "nesting deeper than %d", maxDepth)
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, syntaxErr(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '"':
		_, _, _, next, err := scanString(b, i)
		return next, err
	case c == '{':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			i = skipWS(b, i)
			if i >= len(b) || b[i] != '"' {
				return 0, syntaxErr(i, "expected member name")
			}
			_, _, _, next, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, next)
			if i >= len(b) || b[i] != ':' {
				return 0, syntaxErr(i, "expected ':'")
			}
			if i, err = skipValue(b, i+1, depth+1); err != nil {
				return 0, err
			}
			if i, err = endOfMember(b, i, '}'); err != nil {
				return 0, err
			}
			if i > 0 && b[i-1] == '}' {
				return i, nil
			}
		}
	case c == '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return 0, err
			}
			if i, err = endOfMember(b, i, ']'); err != nil {
				return 0, err
			}
			if b[i-1] == ']' {
				return i, nil
			}
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		end, _, err := scanNumber(b, i)
		return end, err
	default:
		return 0, syntaxErr(i, "unexpected character %q", c)
	}
}

// endOfMember consumes the ',' or closing bracket after an element. It returns the index after
// it; the caller tells the two apart by looking at the consumed byte.
func endOfMember(b []byte, i int, closer byte) (int, error) {
	i = skipWS(b, i)
	if i < len(b) && (b[i] == ',' || b[i] == closer) {
		return i + 1, nil
	}
	return 0, syntaxErr(i, "expected ',' or '%c'", closer)
}

// jsonKind names the JSON kind of the value starting with c, for type-mismatch messages.
func jsonKind(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return strconv.QuoteRune(rune(c))
}

// shown shortens a token for an error message.
func shown(tok []byte) string {
	const max = 40
	if len(tok) > max {
		return string(tok[:max]) + "…"
	}
	return string(tok)
}
