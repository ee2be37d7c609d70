package config

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// AddArchive lists the archive path in the file; it reports whether it
// was not there yet.
func (s *Solutions) AddArchive(path string) (bool, error) {
	if err := CheckArchivePath(path); err != nil {
		return false, fmt.Errorf("archive path: %w", err)
	}
	if slices.Contains(s.Archives, path) {
		return false, nil
	}
	key := s.listKey()
	want := s.snapshot()
	want.archives = append(want.archives, path)
	return true, s.apply(want,
		func(d []byte) ([]byte, bool) { return addItem(d, key, path) },
		func(root *yaml.Node) { nodeAddItem(root, key, path) })
}

// RemoveArchive takes the archive path out of the file; it reports
// whether it was there.
func (s *Solutions) RemoveArchive(path string) (bool, error) {
	i := slices.Index(s.Archives, path)
	if i < 0 {
		return false, nil
	}
	key := s.listKey()
	want := s.snapshot()
	want.archives = slices.Delete(want.archives, i, i+1)
	return true, s.apply(want,
		func(d []byte) ([]byte, bool) { return removeItem(d, key, path) },
		func(root *yaml.Node) { nodeRemoveItem(root, key, path) })
}

// SetActive makes version the active version of the Solution name; it
// reports whether that changed anything. A file in the docs' shape is rewritten to
// SolutionsAPIVersion first (its list key becomes `archives`).
func (s *Solutions) SetActive(name, version string) (bool, error) {
	if err := CheckActive(name, version); err != nil {
		return false, fmt.Errorf("active Solution: %w", err)
	}
	if v, ok := s.Active[name]; ok && v == version {
		return false, nil
	}
	if s.APIVersion == DocsSolutionsAPIVersion {
		want := s.snapshot()
		want.apiVersion = SolutionsAPIVersion
		if err := s.apply(want, upgrade, nodeUpgrade); err != nil {
			return false, err
		}
	}
	want := s.snapshot()
	want.active[name] = version
	return true, s.apply(want,
		func(d []byte) ([]byte, bool) { return setEntry(d, "active", name, version) },
		func(root *yaml.Node) { nodeSetEntry(root, "active", name, version) })
}

// Deactivate removes the Solution name from `active:`; it reports
// whether it was there.
func (s *Solutions) Deactivate(name string) (bool, error) {
	if _, ok := s.Active[name]; !ok {
		return false, nil
	}
	want := s.snapshot()
	delete(want.active, name)
	return true, s.apply(want,
		func(d []byte) ([]byte, bool) { return deleteEntry(d, "active", name) },
		func(root *yaml.Node) { nodeDeleteEntry(root, "active", name) })
}

func (s *Solutions) listKey() string {
	if s.APIVersion == DocsSolutionsAPIVersion {
		return "solutions"
	}
	return "archives"
}

// model is what a SolutionsConfiguration says, to check an edit by.
type model struct {
	apiVersion string
	archives   []string
	active     map[string]string
}

func (s *Solutions) snapshot() model {
	return model{s.APIVersion, slices.Clone(s.Archives), maps.Clone(s.Active)}
}

func (m model) equal(s *Solutions) bool {
	return m.apiVersion == s.APIVersion && slices.Equal(m.archives, s.Archives) && maps.Equal(m.active, s.Active)
}

// apply makes an edit: in the text when surgical can, else through the
// node tree, and keeps the result only if it parses back to want.
func (s *Solutions) apply(want model, surgical func([]byte) ([]byte, bool), tree func(*yaml.Node)) error {
	if out, ok := surgical(s.data); ok {
		if s2, err := ParseSolutions(s.File, out); err == nil && want.equal(s2) {
			s.take(s2, true)
			return nil
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(s.data, &doc); err != nil || len(doc.Content) == 0 {
		return fmt.Errorf("%s: cannot edit: %v", s.File, err)
	}
	tree(doc.Content[0])
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("%s: cannot edit: %v", s.File, err)
	}
	enc.Close()
	s2, err := ParseSolutions(s.File, b.Bytes())
	if err != nil {
		return fmt.Errorf("%s: the edited file does not check: %v", s.File, err)
	}
	if !want.equal(s2) {
		return fmt.Errorf("%s: the edit did not give the configuration it should (a bug)", s.File)
	}
	s.take(s2, false)
	return nil
}

func (s *Solutions) take(s2 *Solutions, surgical bool) {
	s.APIVersion, s.Archives, s.Active, s.data = s2.APIVersion, s2.Archives, s2.Active, s2.data
	s.edited, s.surgical = true, surgical
}

// --- Edits in the text. Each returns false when the file's shape is
// not the simple one it knows, and the node tree takes over.

// text is a file split for line-based edits, as yaml.v3 numbers lines
// and columns (1-based, columns in characters).
type text struct {
	data []byte
	nl   string
}

func newText(d []byte) text {
	nl := "\n"
	if bytes.Contains(d, []byte("\r\n")) {
		nl = "\r\n"
	}
	return text{d, nl}
}

// line returns the byte offsets of 1-based line l: start, end of its
// content (before any \r\n) and start of the next line.
func (t text) line(l int) (start, end, next int, ok bool) {
	start = 0
	for i := 1; i < l; i++ {
		j := bytes.IndexByte(t.data[start:], '\n')
		if j < 0 {
			return 0, 0, 0, false
		}
		start += j + 1
	}
	j := bytes.IndexByte(t.data[start:], '\n')
	if j < 0 {
		end, next = len(t.data), len(t.data)
	} else {
		end, next = start+j, start+j+1
	}
	if end > start && t.data[end-1] == '\r' {
		end--
	}
	return start, end, next, true
}

// pos returns the byte offset of node n's first character.
func (t text) pos(n *yaml.Node) (int, bool) {
	start, end, _, ok := t.line(n.Line)
	if !ok {
		return 0, false
	}
	off := start
	for c := 1; c < n.Column; c++ {
		if off >= end {
			return 0, false
		}
		_, w := utf8.DecodeRune(t.data[off:end])
		off += w
	}
	return off, true
}

// scalar returns where scalar n starts and ends, when it sits on one line.
func (t text) scalar(n *yaml.Node) (start, end int, ok bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, 0, false
	}
	start, ok = t.pos(n)
	if !ok {
		return 0, 0, false
	}
	_, lend, _, _ := t.line(n.Line)
	d := t.data[:lend]
	switch n.Style {
	case 0:
		end = start + len(n.Value)
		if end > len(d) || string(d[start:end]) != n.Value {
			return 0, 0, false
		}
		return start, end, true
	case yaml.SingleQuotedStyle:
		for i := start + 1; i < len(d); i++ {
			if d[i] == '\'' {
				if i+1 < len(d) && d[i+1] == '\'' {
					i++
					continue
				}
				return start, i + 1, true
			}
		}
	case yaml.DoubleQuotedStyle:
		for i := start + 1; i < len(d); i++ {
			switch d[i] {
			case '\\':
				i++
			case '"':
				return start, i + 1, true
			}
		}
	}
	return 0, 0, false
}

var (
	blankRest  = regexp.MustCompile(`^[ \t]*(#.*)?$`)
	itemPrefix = regexp.MustCompile(`^ *- +$`)
	keyPrefix  = regexp.MustCompile(`^ *$`)
	colonRest  = regexp.MustCompile(`^:[ \t]*(#.*)?$`)
)

// restBlank: nothing but blanks or a comment from off to the line's end.
func (t text) restBlank(off, line int) bool {
	_, end, _, _ := t.line(line)
	return off <= end && blankRest.Match(t.data[off:end])
}

func splice(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.Write(p)
	}
	return b.Bytes()
}

// quote writes s as a YAML scalar: plain when that reads back as the
// same string, quoted otherwise.
func quote(s string) (string, bool) {
	out, err := yaml.Marshal(s)
	if err != nil {
		return "", false
	}
	q := strings.TrimSuffix(string(out), "\n")
	return q, !strings.Contains(q, "\n")
}

// topEntry finds key in a block mapping root.
func topEntry(d []byte, key string) (t text, root, k, v *yaml.Node, ok bool) {
	t = newText(d)
	var doc yaml.Node
	if err := yaml.Unmarshal(d, &doc); err != nil || len(doc.Content) == 0 {
		return t, nil, nil, nil, false
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 {
		return t, nil, nil, nil, false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return t, root, root.Content[i], root.Content[i+1], true
		}
	}
	return t, root, nil, nil, true
}

// appendLines adds lines at the end of the file.
func (t text) appendLines(lines ...string) []byte {
	d := t.data
	var b bytes.Buffer
	b.Write(d)
	if len(d) > 0 && d[len(d)-1] != '\n' {
		b.WriteString(t.nl)
	}
	for _, l := range lines {
		b.WriteString(l + t.nl)
	}
	return b.Bytes()
}

// insertAfter adds a line after line l.
func (t text) insertAfter(l int, s string) []byte {
	_, end, next, _ := t.line(l)
	if next == end { // last line, no newline
		return splice(t.data, []byte(t.nl+s))
	}
	return splice(t.data[:next], []byte(s+t.nl), t.data[next:])
}

// colon returns the offset of the ':' after key k, when the key is alone
// on its line up to there and only blanks or a comment follow it.
func (t text) colonAlone(k *yaml.Node) (int, bool) {
	_, kend, ok := t.scalar(k)
	if !ok {
		return 0, false
	}
	_, end, _, _ := t.line(k.Line)
	if kend >= end || !colonRest.Match(t.data[kend:end]) {
		return 0, false
	}
	return kend, true
}

// emptyFlow checks that v is "[]" or "{}" right after key k's colon, with
// only blanks or a comment after it, and returns its offsets.
func (t text) emptyFlow(k, v *yaml.Node, want string) (colon, vstart, vend int, ok bool) {
	if v.Style&yaml.FlowStyle == 0 || len(v.Content) != 0 || v.Line != k.Line {
		return 0, 0, 0, false
	}
	_, kend, ok := t.scalar(k)
	if !ok {
		return 0, 0, 0, false
	}
	vstart, ok = t.pos(v)
	if !ok || vstart+2 > len(t.data) || string(t.data[vstart:vstart+2]) != want {
		return 0, 0, 0, false
	}
	if kend >= vstart || t.data[kend] != ':' || strings.Trim(string(t.data[kend+1:vstart]), " ") != "" || kend+1 == vstart {
		return 0, 0, 0, false
	}
	if !t.restBlank(vstart+2, v.Line) {
		return 0, 0, 0, false
	}
	return kend, vstart, vstart + 2, true
}

// nullValue: "key:" with nothing after it on its line.
func (t text) nullValue(k, v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!null" || v.Value != "" {
		return false
	}
	_, ok := t.colonAlone(k)
	return ok
}

// addItem appends an item to the block sequence under key. An empty "[]"
// becomes a block list, and removeItem turns it back, so that adding then
// removing gives the same bytes.
func addItem(d []byte, key, val string) ([]byte, bool) {
	t, _, k, v, ok := topEntry(d, key)
	q, qok := quote(val)
	if !ok || !qok {
		return nil, false
	}
	const indent = "  - "
	switch {
	case k == nil:
		return t.appendLines(key+":", indent+q), true
	case v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0:
		last := v.Content[len(v.Content)-1]
		start, end, ok := t.scalar(last)
		if !ok || !t.restBlank(end, last.Line) {
			return nil, false
		}
		ls, _, _, _ := t.line(last.Line)
		prefix := string(t.data[ls:start])
		if !itemPrefix.MatchString(prefix) {
			return nil, false
		}
		return t.insertAfter(last.Line, prefix+q), true
	case v.Kind == yaml.SequenceNode:
		colon, _, vend, ok := t.emptyFlow(k, v, "[]")
		if !ok {
			return nil, false
		}
		out := newText(splice(d[:colon+1], d[vend:]))
		out.nl = t.nl
		return out.insertAfter(k.Line, indent+q), true
	case t.nullValue(k, v):
		return t.insertAfter(k.Line, indent+q), true
	}
	return nil, false
}

// entryLine returns the line span of a one-line item or entry: its
// line holds nothing else.
func (t text) ownLine(first, last *yaml.Node, prefix *regexp.Regexp) (start, next int, ok bool) {
	s0, ok := t.pos(first)
	if !ok {
		return 0, 0, false
	}
	_, end, ok := t.scalar(last)
	if !ok || first.Line != last.Line || !t.restBlank(end, last.Line) {
		return 0, 0, false
	}
	ls, _, next, _ := t.line(first.Line)
	if !prefix.Match(t.data[ls:s0]) {
		return 0, 0, false
	}
	return ls, next, true
}

// lineSpan widens the span of a whole line to delete: the last line,
// without a newline, takes the line break before it, so that deleting
// what insertAfter added gives back the same bytes.
func (t text) lineSpan(ls, next int) (int, int) {
	if next == len(t.data) && (next == 0 || t.data[next-1] != '\n') && ls > 0 {
		ls--
		if ls > 0 && t.data[ls-1] == '\r' {
			ls--
		}
	}
	return ls, next
}

// dropLine deletes the line(s) [ls, next) of one entry under key k; when
// it was the last one, k's value becomes empty ("[]" or "{}") so the key
// keeps its type.
func (t text) dropLine(d []byte, k *yaml.Node, ls, next int, last bool, empty string) ([]byte, bool) {
	if !last {
		ls, next = t.lineSpan(ls, next)
		return splice(d[:ls], d[next:]), true
	}
	colon, ok := t.colonAlone(k)
	if !ok {
		return nil, false
	}
	ls, next = t.lineSpan(ls, next)
	return splice(d[:colon+1], []byte(" "+empty), d[colon+1:ls], d[next:]), true
}

// removeItem deletes the line of the item val; the last one leaves "[]".
func removeItem(d []byte, key, val string) ([]byte, bool) {
	t, _, k, v, ok := topEntry(d, key)
	if !ok || k == nil || v.Kind != yaml.SequenceNode || v.Style&yaml.FlowStyle != 0 {
		return nil, false
	}
	for _, it := range v.Content {
		if it.Value != val {
			continue
		}
		ls, next, ok := t.ownLine(it, it, itemPrefix)
		if !ok {
			return nil, false
		}
		return t.dropLine(d, k, ls, next, len(v.Content) == 1, "[]")
	}
	return nil, false
}

// setEntry sets name: val in the block mapping under key.
func setEntry(d []byte, key, name, val string) ([]byte, bool) {
	t, _, k, v, ok := topEntry(d, key)
	qn, nok := quote(name)
	qv, vok := quote(val)
	if !ok || !nok || !vok {
		return nil, false
	}
	const indent = "  "
	switch {
	case k == nil:
		return t.appendLines(key+":", indent+qn+": "+qv), true
	case v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0:
		for i := 0; i+1 < len(v.Content); i += 2 {
			ek, ev := v.Content[i], v.Content[i+1]
			if ek.Value != name {
				continue
			}
			start, end, ok := t.scalar(ev)
			if !ok || ev.Line != ek.Line {
				return nil, false
			}
			return splice(d[:start], []byte(qv), d[end:]), true
		}
		lk, lv := v.Content[len(v.Content)-2], v.Content[len(v.Content)-1]
		ls, _, ok := t.ownLine(lk, lv, keyPrefix)
		if !ok {
			return nil, false
		}
		ks, _ := t.pos(lk)
		return t.insertAfter(lk.Line, string(d[ls:ks])+qn+": "+qv), true
	case v.Kind == yaml.MappingNode:
		colon, _, vend, ok := t.emptyFlow(k, v, "{}")
		if !ok {
			return nil, false
		}
		out := newText(splice(d[:colon+1], d[vend:]))
		out.nl = t.nl
		return out.insertAfter(k.Line, indent+qn+": "+qv), true
	case t.nullValue(k, v):
		return t.insertAfter(k.Line, indent+qn+": "+qv), true
	}
	return nil, false
}

// deleteEntry deletes the line of entry name; the last one leaves "{}".
func deleteEntry(d []byte, key, name string) ([]byte, bool) {
	t, _, k, v, ok := topEntry(d, key)
	if !ok || k == nil || v.Kind != yaml.MappingNode || v.Style&yaml.FlowStyle != 0 {
		return nil, false
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		ek, ev := v.Content[i], v.Content[i+1]
		if ek.Value != name {
			continue
		}
		ls, next, ok := t.ownLine(ek, ev, keyPrefix)
		if !ok {
			return nil, false
		}
		return t.dropLine(d, k, ls, next, len(v.Content) == 2, "{}")
	}
	return nil, false
}

// upgrade rewrites a docs-shaped file's apiVersion and renames its
// `solutions` list to `archives`, in place.
func upgrade(d []byte) ([]byte, bool) {
	t, root, _, _, ok := topEntry(d, "")
	if !ok {
		return nil, false
	}
	// Replace from the end of the file backwards so offsets stay valid.
	type rep struct {
		start, end int
		with       string
	}
	var reps []rep
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		var n *yaml.Node
		var with string
		switch k.Value {
		case "apiVersion":
			n, with = v, SolutionsAPIVersion
		case "solutions":
			n, with = k, "archives"
		default:
			continue
		}
		start, end, ok := t.scalar(n)
		if !ok {
			return nil, false
		}
		reps = append(reps, rep{start, end, with})
	}
	slices.SortFunc(reps, func(a, b rep) int { return b.start - a.start })
	for _, r := range reps {
		d = splice(d[:r.start], []byte(r.with), d[r.end:])
	}
	return d, true
}

// --- The same edits on the node tree, for the shapes the text edits
// leave alone. yaml.v3 keeps comments and order; not blank lines, and it
// may requote.

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// nodeValue returns the value of key in root, adding the key with an
// empty collection of kind when it is missing or null.
func nodeValue(root *yaml.Node, key string, kind yaml.Kind) *yaml.Node {
	tag := map[yaml.Kind]string{yaml.SequenceNode: "!!seq", yaml.MappingNode: "!!map"}[kind]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			v := root.Content[i+1]
			if isNull(v) {
				*v = yaml.Node{Kind: kind, Tag: tag, Line: v.Line, Column: v.Column, LineComment: v.LineComment}
			}
			return v
		}
	}
	v := &yaml.Node{Kind: kind, Tag: tag}
	root.Content = append(root.Content, str(key), v)
	return v
}

func nodeAddItem(root *yaml.Node, key, val string) {
	v := nodeValue(root, key, yaml.SequenceNode)
	v.Content = append(v.Content, str(val))
}

func nodeRemoveItem(root *yaml.Node, key, val string) {
	v := nodeValue(root, key, yaml.SequenceNode)
	v.Content = slices.DeleteFunc(v.Content, func(n *yaml.Node) bool { return n.Value == val })
}

func nodeSetEntry(root *yaml.Node, key, name, val string) {
	v := nodeValue(root, key, yaml.MappingNode)
	for i := 0; i+1 < len(v.Content); i += 2 {
		if v.Content[i].Value == name {
			old := v.Content[i+1]
			n := str(val)
			n.LineComment, n.HeadComment, n.FootComment = old.LineComment, old.HeadComment, old.FootComment
			v.Content[i+1] = n
			return
		}
	}
	v.Content = append(v.Content, str(name), str(val))
}

func nodeDeleteEntry(root *yaml.Node, key, name string) {
	v := nodeValue(root, key, yaml.MappingNode)
	for i := 0; i+1 < len(v.Content); i += 2 {
		if v.Content[i].Value == name {
			v.Content = slices.Delete(v.Content, i, i+2)
			return
		}
	}
}

func nodeUpgrade(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "apiVersion":
			root.Content[i+1] = str(SolutionsAPIVersion)
		case "solutions":
			root.Content[i].Value = "archives"
		}
	}
}
