package connect

// node is a generic JSON tree, used only for schema text: a schema is parsed once per distinct
// text (see Parser's cache), so clarity wins over speed here.
type node struct {
	kind  byte // one of '"', '{', '[', 't', 'f', 'n', '0' (number)
	raw   []byte
	str   string
	keys  []string
	vals  []*node
	elems []*node
}

func parseNode(b []byte, i int, depth int) (*node, int, error) {
	if depth > maxDepth {
		return nil, 0, syntaxErr(i, "nesting deeper than %d", maxDepth)
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return nil, 0, syntaxErr(i, "unexpected end of input")
	}
	start := i
	n := &node{}
	switch c := b[i]; {
	case c == '"':
		s, e, esc, next, err := scanString(b, i)
		if err != nil {
			return nil, 0, err
		}
		if n.str, err = stringValue(b[s:e], esc); err != nil {
			return nil, 0, err
		}
		n.kind, i = '"', next
	case c == '{':
		n.kind = '{'
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			i++
			break
		}
		for {
			i = skipWS(b, i)
			if i >= len(b) || b[i] != '"' {
				return nil, 0, syntaxErr(i, "expected member name")
			}
			s, e, esc, next, err := scanString(b, i)
			if err != nil {
				return nil, 0, err
			}
			key, err := stringValue(b[s:e], esc)
			if err != nil {
				return nil, 0, err
			}
			i = skipWS(b, next)
			if i >= len(b) || b[i] != ':' {
				return nil, 0, syntaxErr(i, "expected ':'")
			}
			v, next2, err := parseNode(b, i+1, depth+1)
			if err != nil {
				return nil, 0, err
			}
			n.keys = append(n.keys, key)
			n.vals = append(n.vals, v)
			if i, err = endOfMember(b, next2, '}'); err != nil {
				return nil, 0, err
			}
			if b[i-1] == '}' {
				break
			}
		}
	case c == '[':
		n.kind = '['
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			i++
			break
		}
		for {
			v, next, err := parseNode(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			n.elems = append(n.elems, v)
			if i, err = endOfMember(b, next, ']'); err != nil {
				return nil, 0, err
			}
			if b[i-1] == ']' {
				break
			}
		}
	default:
		next, err := skipValue(b, i, depth)
		if err != nil {
			return nil, 0, err
		}
		n.kind, i = c, next
		if c == '-' || (c >= '0' && c <= '9') {
			n.kind = '0'
		}
	}
	n.raw = b[start:i]
	return n, i, nil
}

// get returns the member named key of an object node, or nil. A JSON null member counts as
// absent.
func (n *node) get(key string) *node {
	var v *node
	for i, k := range n.keys {
		if k == key {
			v = n.vals[i] // the last duplicate wins, as in Jackson
		}
	}
	if v != nil && v.kind == 'n' {
		return nil
	}
	return v
}
