package repomd

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// scanner is a small, allocation-light XML tokenizer for the createrepo
// documents. encoding/xml reads a 5,000-package primary.xml in over a
// second; this reads it in a few tens of milliseconds. It handles what
// well-formed createrepo output contains (elements, attributes, character
// and entity references, comments, processing instructions, CDATA) and
// reports anything else as an error with its line; it does not validate
// beyond that. The differential fuzz test holds it to encoding/xml.
type scanner struct {
	b []byte
	i int
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokStart
	tokEnd
	tokText
)

type xattr struct{ name, value []byte }

type token struct {
	kind      tokKind
	name      []byte // local name, without any prefix
	attrs     []xattr
	text      []byte // unescaped, for tokText
	selfClose bool
}

func (s *scanner) errorf(format string, a ...any) error {
	return fmt.Errorf("line %d: %s", 1+bytes.Count(s.b[:min(s.i, len(s.b))], []byte("\n")), fmt.Sprintf(format, a...))
}

func localName(n []byte) []byte {
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		return n[i+1:]
	}
	return n
}

// next returns the next token. attrs and text may alias internal buffers
// valid until the following call.
func (s *scanner) next(t *token) error {
	t.attrs = t.attrs[:0]
	t.selfClose = false
	for {
		if s.i >= len(s.b) {
			t.kind = tokEOF
			return nil
		}
		if s.b[s.i] != '<' {
			j := bytes.IndexByte(s.b[s.i:], '<')
			if j < 0 {
				j = len(s.b) - s.i
			}
			raw := s.b[s.i : s.i+j]
			s.i += j
			txt, err := unescape(raw)
			if err != nil {
				return s.errorf("%v", err)
			}
			t.kind, t.text = tokText, txt
			return nil
		}
		rest := s.b[s.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			j := bytes.Index(rest, []byte("?>"))
			if j < 0 {
				return s.errorf("unterminated processing instruction")
			}
			s.i += j + 2
			continue
		case bytes.HasPrefix(rest, []byte("<!--")):
			j := bytes.Index(rest[4:], []byte("-->"))
			if j < 0 {
				return s.errorf("unterminated comment")
			}
			s.i += 4 + j + 3
			continue
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			j := bytes.Index(rest[9:], []byte("]]>"))
			if j < 0 {
				return s.errorf("unterminated CDATA section")
			}
			t.kind, t.text = tokText, rest[9:9+j]
			s.i += 9 + j + 3
			return nil
		case bytes.HasPrefix(rest, []byte("<!")):
			return s.errorf("DTDs are not supported")
		case bytes.HasPrefix(rest, []byte("</")):
			j := bytes.IndexByte(rest, '>')
			if j < 0 {
				return s.errorf("unterminated end tag")
			}
			t.kind, t.name = tokEnd, localName(bytes.TrimSpace(rest[2:j]))
			s.i += j + 1
			return nil
		}
		// Start tag.
		k := 1
		for k < len(rest) && !isSpace(rest[k]) && rest[k] != '>' && rest[k] != '/' {
			k++
		}
		if k == 1 {
			return s.errorf("empty element name")
		}
		t.kind, t.name = tokStart, localName(rest[1:k])
		for {
			for k < len(rest) && isSpace(rest[k]) {
				k++
			}
			if k >= len(rest) {
				return s.errorf("unterminated start tag <%s>", t.name)
			}
			if rest[k] == '>' {
				s.i += k + 1
				return nil
			}
			if rest[k] == '/' {
				if k+1 >= len(rest) || rest[k+1] != '>' {
					return s.errorf("bad self-closing tag <%s>", t.name)
				}
				t.selfClose = true
				s.i += k + 2
				return nil
			}
			n0 := k
			for k < len(rest) && rest[k] != '=' && !isSpace(rest[k]) && rest[k] != '>' {
				k++
			}
			name := rest[n0:k]
			for k < len(rest) && isSpace(rest[k]) {
				k++
			}
			if k >= len(rest) || rest[k] != '=' || len(name) == 0 {
				return s.errorf("attribute without value in <%s>", t.name)
			}
			k++
			for k < len(rest) && isSpace(rest[k]) {
				k++
			}
			if k >= len(rest) || rest[k] != '"' && rest[k] != '\'' {
				return s.errorf("unquoted attribute value in <%s>", t.name)
			}
			q := rest[k]
			e := bytes.IndexByte(rest[k+1:], q)
			if e < 0 {
				return s.errorf("unterminated attribute value in <%s>", t.name)
			}
			raw := rest[k+1 : k+1+e]
			if bytes.IndexByte(raw, '<') >= 0 {
				return s.errorf("'<' in attribute value in <%s>", t.name)
			}
			val, err := unescape(raw)
			if err != nil {
				return s.errorf("%v", err)
			}
			t.attrs = append(t.attrs, xattr{name, val})
			k += 1 + e + 1
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unescape resolves entity and character references. It returns raw
// itself when there are none (the common case).
func unescape(raw []byte) ([]byte, error) {
	if bytes.IndexByte(raw, '&') < 0 {
		return raw, nil
	}
	out := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '&')
		if j < 0 {
			out = append(out, raw...)
			break
		}
		out = append(out, raw[:j]...)
		raw = raw[j:]
		e := bytes.IndexByte(raw, ';')
		if e < 0 {
			return nil, errors.New("unterminated entity reference")
		}
		ent := string(raw[1:e])
		raw = raw[e+1:]
		switch ent {
		case "amp":
			out = append(out, '&')
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			var n uint64
			var err error
			switch {
			case len(ent) > 2 && (ent[:2] == "#x" || ent[:2] == "#X"):
				n, err = strconv.ParseUint(ent[2:], 16, 32)
			case len(ent) > 1 && ent[0] == '#':
				n, err = strconv.ParseUint(ent[1:], 10, 32)
			default:
				return nil, fmt.Errorf("unknown entity &%s;", ent)
			}
			if err != nil || !isXMLChar(rune(n)) {
				return nil, fmt.Errorf("bad character reference &%s;", ent)
			}
			out = utf8.AppendRune(out, rune(n))
		}
	}
	return out, nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
