package iso

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"unicode/utf16"
)

// compareTrees checks that the Joliet tree lists the files of the primary
// (Rock Ridge) tree with the same content: Windows and some installers
// read Joliet, Linux reads Rock Ridge, and an image must not say one thing
// to one and another to the other (a Joliet product.txt with another
// version, say). Content is the same when both trees point at the same
// extents, or when the bytes are equal.
//
// Joliet has no symbolic links: genisoimage lists them as empty files,
// xorriso leaves them out; both are accepted. A directory that only held
// relocated directories (genisoimage's rr_moved) has no Joliet
// counterpart either.
func (im *Image) compareTrees() {
	var cmp func(p, j *Entry)
	cmp = func(p, j *Entry) {
		for _, pair := range pairChildren(p, j) {
			c, jc := pair[0], pair[1]
			if c == nil {
				im.problem(jc.Path(), fmt.Sprintf("in the Joliet tree (%s), missing from the Rock Ridge tree", kindOf(jc)))
				continue
			}
			path := c.Path()
			switch {
			case c.relocation:
			case c.Mode&fs.ModeSymlink != 0:
				if jc != nil && (jc.Mode.IsDir() || jc.Size != 0) {
					im.problem(path, fmt.Sprintf("a symbolic link in the Rock Ridge tree, a %s in the Joliet tree", kindOf(jc)))
				}
			case jc == nil:
				im.problem(path, "in the Rock Ridge tree, missing from the Joliet tree")
			case c.Mode.IsDir() != jc.Mode.IsDir():
				im.problem(path, fmt.Sprintf("a %s in the Rock Ridge tree, a %s in the Joliet tree", kindOf(c), kindOf(jc)))
			case c.Mode.IsDir():
				cmp(c, jc)
			case !c.Mode.IsRegular():
				// A special file: Joliet can only list it as a file; the
				// validator refuses it anyway.
			case c.Size != jc.Size:
				im.problem(path, fmt.Sprintf("%d bytes in the Rock Ridge tree, %d in the Joliet tree", c.Size, jc.Size))
			case c.extents == nil || jc.extents == nil:
				// Its data is refused, and a Problem already says why.
			case c.ExtentKey() != jc.ExtentKey():
				same, err := im.sameContent(c, jc)
				if err != nil {
					im.problem(path, "comparing the Rock Ridge and Joliet contents: "+err.Error())
				} else if !same {
					im.problem(path, "the Joliet tree gives it other content than the Rock Ridge tree")
				}
			}
		}
	}
	cmp(im.root, im.jroot)
}

// pairChildren pairs the entries of a primary directory with those of its
// Joliet counterpart: by equal names first, then, for a name Joliet
// cannot hold as is (too long, or with a character Joliet forbids), with
// an entry whose name the writers derive from it (jolietDerived),
// preferring one that shares its extents. A name Joliet can hold must
// appear as is. Unpaired entries come with a nil partner.
func pairChildren(p, j *Entry) [][2]*Entry {
	var out [][2]*Entry
	used := make(map[*Entry]bool)
	var left []*Entry
	for _, c := range p.children {
		if jc := j.child(c.name); jc != nil {
			used[jc] = true
			out = append(out, [2]*Entry{c, jc})
		} else {
			left = append(left, c)
		}
	}
	for _, c := range left {
		var best *Entry
		for _, jc := range j.children {
			if used[jc] || !jolietDerived(c.name, jc.name) {
				continue
			}
			if best == nil || c.Mode.IsRegular() && jc.ExtentKey() == c.ExtentKey() && best.ExtentKey() != c.ExtentKey() {
				best = jc
			}
		}
		if best != nil {
			used[best] = true
		}
		out = append(out, [2]*Entry{c, best})
	}
	for _, jc := range j.children {
		if !used[jc] {
			out = append(out, [2]*Entry{nil, jc})
		}
	}
	return out
}

// jolietDistinctUnits is how many UCS-2 characters of a name every Joliet
// writer keeps (64; 103 with -joliet-long).
const jolietDistinctUnits = 64

// jolietDerived reports whether a Joliet name is what a writer makes of
// a primary name Joliet cannot hold as is: characters mapped to '_' (as
// jolietUnits does), cut to 64 or more characters, the tail possibly
// replaced by a decimal counter to keep names unique.
func jolietDerived(name, jname string) bool {
	m := jolietUnits(name)
	exact := len(m) <= jolietDistinctUnits && string(utf16.Decode(m)) == name
	if exact {
		return false // it must appear as is
	}
	j := utf16.Encode([]rune(jname))
	stem := j
	for k := 0; k < 6 && len(stem) > 0 && stem[len(stem)-1] >= '0' && stem[len(stem)-1] <= '9'; k++ {
		stem = stem[:len(stem)-1]
	}
	for _, cand := range [][]uint16{j, stem} {
		if len(cand) <= len(m) && slices.Equal(m[:len(cand)], cand) && (len(cand) == len(m) || len(j) >= jolietDistinctUnits) {
			return true
		}
	}
	return false
}

func kindOf(e *Entry) string {
	switch {
	case e.Mode.IsDir():
		return "directory"
	case e.Mode&fs.ModeSymlink != 0:
		return "symbolic link"
	case e.Mode.IsRegular():
		return "regular file"
	}
	return "special file"
}

// sameContent compares two files' bytes, a chunk at a time. Both sides
// are within their tree's MaxExtentReuse budget, so the work is bounded.
func (im *Image) sameContent(a, b *Entry) (bool, error) {
	fa, fb := &file{f: im.FS(), e: a}, &file{f: im.FS(), e: b}
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}
