package iso

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Primary names follow mkisofs -full-iso9660-filenames at level 3: d-characters
// (A-Z, 0-9, _), a file name and extension of at most 30 characters together
// (ECMA-119 7.5.1) plus the separator and ";1", directory names of at most 31.
const (
	maxFileNameExt = 30
	maxDirName     = 31
)

func dchar(r rune) byte {
	switch {
	case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
		return byte(r)
	case r >= 'a' && r <= 'z':
		return byte(r - 'a' + 'A')
	}
	return '_'
}

func dchars(s string) string {
	var sb strings.Builder
	for _, r := range s {
		sb.WriteByte(dchar(r))
	}
	return sb.String()
}

// primaryParts splits a source name into the mapped name and extension.
func primaryParts(n *node) (name, ext string) {
	if n.kind == kindDir {
		return dchars(n.name), ""
	}
	base, e := n.name, ""
	if i := strings.LastIndexByte(n.name, '.'); i >= 0 {
		base, e = n.name[:i], n.name[i+1:]
	}
	name, ext = dchars(base), dchars(e)
	if len(name)+len(ext) > maxFileNameExt {
		if len(ext) > 10 {
			ext = ext[:10]
		}
		if len(name) > maxFileNameExt-len(ext) {
			name = name[:maxFileNameExt-len(ext)]
		}
	}
	return name, ext
}

func primaryIdent(n *node, name, ext string) string {
	if n.kind == kindDir {
		return name
	}
	return name + "." + ext + ";1"
}

// uniqueKey is what readers that drop versions and trailing dots see, so
// "FOO.;1" and the directory "FOO" count as a collision.
func uniqueKey(ident string) string {
	ident = strings.TrimSuffix(ident, ";1")
	return strings.TrimSuffix(ident, ".")
}

// assignPrimaryNames gives every child of dir a unique primary identifier.
// On a collision the end of the name is replaced by a decimal counter, the
// way mkisofs does, so the first name in sorted order keeps its plain form.
//
// next remembers, per colliding identifier, the first counter not yet
// tried: every smaller counter gave an identifier already in use, and uses
// are never released, so the search resumes there. Without it, n names
// that map to the same identifier (say "é1", "è1", "ê1"… all "_1") cost
// n²/2 probes, seconds for a directory of 10,000 such names.
func assignPrimaryNames(dir *node) {
	used := make(map[string]bool, len(dir.children))
	next := map[string]int{}
	for _, c := range dir.children {
		name, ext := primaryParts(c)
		limit := maxDirName
		if c.kind != kindDir {
			limit = maxFileNameExt - len(ext)
		}
		if len(name) > limit {
			name = name[:limit]
		}
		ident := primaryIdent(c, name, ext)
		base := ident
		i := next[base]
		for ; used[uniqueKey(ident)]; i++ {
			suffix := strconv.Itoa(i)
			if len(suffix) < 3 {
				suffix = strings.Repeat("0", 3-len(suffix)) + suffix
			}
			cut, e := min(len(name), limit-len(suffix)), ext
			if cut < 0 {
				// The extension leaves no room: shorten it instead (from
				// its full length each time, so that the result does not
				// depend on how many counters were tried before).
				e = ext[:max(0, len(ext)+cut)]
				cut = 0
			}
			ident = primaryIdent(c, name[:cut]+suffix, e)
		}
		next[base] = i
		used[uniqueKey(ident)] = true
		c.isoName = []byte(ident)
	}
	sort.SliceStable(dir.children, func(i, j int) bool {
		return comparePrimary(dir.children[i].isoName, dir.children[j].isoName) < 0
	})
}

// comparePrimary orders identifiers as ECMA-119 9.3 asks: name, then
// extension, each padded with spaces, then version (equal here).
func comparePrimary(a, b []byte) int {
	an, ae := splitIdent(a)
	bn, be := splitIdent(b)
	if c := comparePadded(an, bn); c != 0 {
		return c
	}
	return comparePadded(ae, be)
}

func splitIdent(s []byte) (name, ext []byte) {
	if i := bytes.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if i := bytes.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

func comparePadded(a, b []byte) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		ca, cb := byte(' '), byte(' ')
		if i < len(a) {
			ca = a[i]
		}
		if i < len(b) {
			cb = b[i]
		}
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	return 0
}

// jolietUnits maps a name to UCS-2 the way genisoimage does: characters
// Joliet forbids (* / : ; ? \) and characters outside the BMP become '_'.
func jolietUnits(s string) []uint16 {
	u := make([]uint16, 0, len(s))
	for _, r := range s {
		switch {
		case r < 0x20, strings.ContainsRune("*/:;?\\", r), r > 0xFFFF, utf16.IsSurrogate(r):
			r = '_'
		}
		u = append(u, uint16(r))
	}
	return u
}

func ucs2(u []uint16) []byte {
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c>>8), byte(c)
	}
	return b
}

// assignJolietNames truncates names to the Joliet limit (plain truncation,
// as genisoimage does) and makes the results unique by replacing the tail
// with a counter, where genisoimage would give up.
func assignJolietNames(dir *node, limit int) {
	used := make(map[string]bool, len(dir.children))
	next := map[string]int{} // as in assignPrimaryNames
	for _, c := range dir.children {
		u := jolietUnits(c.name)
		if len(u) > limit {
			u = u[:limit]
		}
		ident := ucs2(u)
		base := string(ident)
		i := next[base]
		for ; used[string(ident)]; i++ {
			suffix := strconv.Itoa(i)
			if len(suffix) < 3 {
				suffix = strings.Repeat("0", 3-len(suffix)) + suffix
			}
			cut := min(len(u), limit-len(suffix))
			v := append(append([]uint16{}, u[:cut]...), utf16.Encode([]rune(suffix))...)
			ident = ucs2(v)
		}
		next[base] = i
		used[string(ident)] = true
		c.jName = ident
	}
}

func jolietSorted(children []*node) []*node {
	s := append([]*node(nil), children...)
	sort.SliceStable(s, func(i, j int) bool { return bytes.Compare(s[i].jName, s[j].jName) < 0 })
	return s
}
