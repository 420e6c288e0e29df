package connect

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// DefaultCacheSize is the number of distinct schema texts a Parser keeps when none is given.
const DefaultCacheSize = 64

// maxCachedSchema bounds the text length of one cached schema, so the cache's memory stays
// bounded by CacheSize × maxCachedSchema. Longer schemas are parsed every time.
const maxCachedSchema = 1 << 20

// Parser decodes Connect JSON envelopes. It caches parsed schemas by their exact text, bounded to
// a number of entries; it is safe for concurrent use.
type Parser struct {
	max    int
	mu     sync.Mutex
	byText map[string]*cachedSchema
	last   atomic.Pointer[cachedSchema]
	hits   atomic.Uint64
	misses atomic.Uint64
}

// cachedSchema is one schema text and what parsing it gave, including a refusal: a bad schema
// repeated in every record is refused at the cost of a lookup, not a parse.
type cachedSchema struct {
	text   []byte
	schema *Schema
	err    error
}

// NewParser returns a Parser whose schema cache holds up to cacheSize distinct schema texts
// (DefaultCacheSize when cacheSize ≤ 0).
func NewParser(cacheSize int) *Parser {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Parser{max: cacheSize, byText: make(map[string]*cachedSchema)}
}

// CacheStats counts schema cache lookups.
type CacheStats struct {
	Hits, Misses uint64 // a miss is a schema parse
	Entries      int
}

// Stats returns the cache counters.
func (p *Parser) Stats() CacheStats {
	p.mu.Lock()
	n := len(p.byText)
	p.mu.Unlock()
	return CacheStats{Hits: p.hits.Load(), Misses: p.misses.Load(), Entries: n}
}

// ParseSchema parses a schema JSON text (through the cache). The schema must describe a struct.
func (p *Parser) ParseSchema(text []byte) (*Schema, error) {
	i := skipWS(text, 0)
	if i >= len(text) {
		return nil, syntaxErr(i, "unexpected end of input")
	}
	s, next, err := p.schemaAt(text, i)
	if err != nil {
		return nil, err
	}
	if j := skipWS(text, next); j != len(text) {
		return nil, syntaxErr(j, "trailing data after schema")
	}
	return s, nil
}

// schemaAt returns the schema whose JSON text starts at b[i] and the index after it.
func (p *Parser) schemaAt(b []byte, i int) (*Schema, int, error) {
	// Fast path: the same text as the previous record. A complete JSON value found as a prefix
	// of b[i:] is exactly the value at i, so no scan is needed to find its end.
	// Only objects qualify: a bare number or literal could be a prefix of a longer token.
	if c := p.last.Load(); c != nil && c.text[0] == '{' && bytes.HasPrefix(b[i:], c.text) {
		p.hits.Add(1)
		return c.schema, i + len(c.text), c.failure()
	}
	end, err := skipValue(b, i, 0)
	if err != nil {
		return nil, 0, asSchemaError(err)
	}
	text := b[i:end]
	p.mu.Lock()
	c, ok := p.byText[string(text)]
	p.mu.Unlock()
	if ok {
		p.hits.Add(1)
		p.last.Store(c)
		return c.schema, end, c.failure()
	}
	p.misses.Add(1)
	c = &cachedSchema{text: bytes.Clone(text)}
	c.schema, c.err = parseTopSchema(c.text)
	if len(text) <= maxCachedSchema {
		p.mu.Lock()
		if len(p.byText) >= p.max {
			for k := range p.byText { // evict an arbitrary entry: bounded, and good enough for a handful of topics
				delete(p.byText, k)
				break
			}
		}
		p.byText[string(c.text)] = c
		p.mu.Unlock()
		p.last.Store(c)
	}
	return c.schema, end, c.failure()
}

// failure returns a copy of the cached refusal, so callers may annotate it without touching the
// shared one.
func (c *cachedSchema) failure() error {
	switch e := c.err.(type) {
	case nil:
		return nil
	case *SchemaError:
		cp := *e
		return &cp
	case *FieldError:
		cp := *e
		return &cp
	}
	return c.err
}

func parseTopSchema(text []byte) (*Schema, error) {
	n, _, err := parseNode(text, 0, 0)
	if err != nil {
		return nil, asSchemaError(err)
	}
	s, err := schemaFromNode(n, 0)
	if err != nil {
		return nil, err
	}
	if s.Type != TypeStruct {
		return nil, &SchemaError{Reason: "top-level schema must be a struct, got " + s.Type.String()}
	}
	return s, nil
}

// Parse decodes one record value: an object with exactly the members "schema" and "payload". A
// null schema leaves the payload undecoded in rec.Payload (schemaless). rec is reset first.
func (p *Parser) Parse(data []byte, rec *Record) error {
	rec.reset()
	data = bytes.TrimPrefix(data, utf8BOM)
	i := skipWS(data, 0)
	if i >= len(data) {
		return &FieldError{Reason: "value is empty: " + errEnvelope}
	}
	if data[i] != '{' {
		// Say that it is not JSON at all (`hello world`) rather than only that it is no envelope.
		end, err := skipValue(data, i, 0)
		if err != nil {
			return err
		}
		if j := skipWS(data, end); j != len(data) {
			return syntaxErr(j, "trailing data after the value")
		}
		return &FieldError{Reason: errEnvelope}
	}
	i = skipWS(data, i+1)
	var haveSchema, havePayload bool
	if i < len(data) && data[i] == '}' {
		return &FieldError{Reason: errEnvelope}
	}
	for {
		i = skipWS(data, i)
		if i >= len(data) || data[i] != '"' {
			return syntaxErr(i, "expected member name")
		}
		st, en, esc, next, err := scanString(data, i)
		if err != nil {
			return err
		}
		key := data[st:en]
		if esc {
			str, err := stringValue(key, true)
			if err != nil {
				return err
			}
			key = []byte(str)
		}
		i = skipWS(data, next)
		if i >= len(data) || data[i] != ':' {
			return syntaxErr(i, "expected ':'")
		}
		i = skipWS(data, i+1)
		switch {
		case string(key) == "schema" && !haveSchema:
			haveSchema = true
			if i < len(data) && data[i] == 'n' {
				if next, err = literal(data, i, "null"); err != nil {
					return err
				}
				break
			}
			s, end, err := p.schemaAt(data, i)
			if err != nil {
				return err
			}
			rec.Schema, next = s, end
			if havePayload { // payload came first: decode it now that the schema is known
				if err := decodeTop(rec, rec.Payload); err != nil {
					return err
				}
			}
		case string(key) == "payload" && !havePayload:
			havePayload = true
			if haveSchema && rec.Schema != nil {
				start := i
				if next, err = decodeTopAt(rec, data, i); err != nil {
					return err
				}
				rec.Payload = data[start:next]
				break
			}
			if next, err = skipValue(data, i, 0); err != nil {
				return err
			}
			rec.Payload = data[i:next]
		default:
			return &FieldError{Reason: errEnvelope}
		}
		if i, err = endOfMember(data, next, '}'); err != nil {
			return err
		}
		if data[i-1] == '}' {
			break
		}
	}
	if j := skipWS(data, i); j != len(data) {
		return syntaxErr(j, "trailing data after the envelope")
	}
	if !haveSchema || !havePayload {
		return &FieldError{Reason: errEnvelope}
	}
	return nil
}

// decodeTop decodes a whole payload text against rec.Schema.
func decodeTop(rec *Record, payload []byte) error {
	end, err := decodeTopAt(rec, payload, 0)
	if err != nil {
		return err
	}
	if j := skipWS(payload, end); j != len(payload) {
		return syntaxErr(j, "trailing data after the payload")
	}
	return nil
}

// decodeTopAt decodes the top-level struct at b[i] into rec.Values.
func decodeTopAt(rec *Record, b []byte, i int) (int, error) {
	s := rec.Schema
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, syntaxErr(i, "unexpected end of input")
	}
	switch b[i] {
	case '{':
		rec.sized(len(s.Fields))
		return decodeStruct(s, b, i, rec.Values, rec.present, &rec.Extra, 0)
	case 'n':
		next, err := literal(b, i, "null")
		if err != nil {
			return 0, err
		}
		if !s.Optional {
			return 0, &FieldError{Reason: "invalid null value for required struct field"}
		}
		rec.Null = true
		return next, nil
	}
	return 0, &FieldError{Reason: "expected struct, got " + jsonKind(b[i])}
}

// ParsePayload decodes a bare payload (no envelope) against a schema the caller supplies: Kafka's
// schema.content (KIP-1054), or a schema derived from a table's columns for schemaless topics.
// s must be a struct schema; rec is reset first.
func ParsePayload(s *Schema, payload []byte, rec *Record) error {
	rec.reset()
	if s == nil || s.Type != TypeStruct {
		return &SchemaError{Reason: "ParsePayload needs a struct schema"}
	}
	payload = bytes.TrimPrefix(payload, utf8BOM)
	rec.Schema, rec.Payload = s, payload
	return decodeTop(rec, payload)
}

// utf8BOM may start a value: JsonConverter (Jackson) skips it, and so does the parser (error
// offsets then count from after it).
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// asSchemaError reports malformed JSON inside the schema member as a schema problem.
func asSchemaError(err error) error {
	if fe, ok := err.(*FieldError); ok {
		return &SchemaError{Field: fe.Field, Reason: fe.Reason}
	}
	return err
}
