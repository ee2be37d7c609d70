package iso

import (
	"encoding/binary"
	"strings"
	"time"
)

// System Use Sharing Protocol 1.12 and Rock Ridge 1.12 entries. Each entry
// is at most 255 bytes; NM and SL are split into several entries with their
// CONTINUE flags so that a name or target of any length fits.

const (
	ceLen     = 28 // the only length a CE entry has
	maxEntry  = 255
	erID      = "IEEE_P1282"
	erDesc    = "THE IEEE P1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS."
	erSource  = "PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR THE P1282 SPECIFICATION."
	tfFlags   = 0x0E // MODIFY, ACCESS, ATTRIBUTES; 7-byte dates
	nmCont    = 0x01
	slCont    = 0x01
	slCurrent = 0x02
	slParent  = 0x04
	slRoot    = 0x08
)

// Entry signatures: SUSP's own (SP, CE, ST, ER, PD) and the Rock Ridge ones.
const (
	sigSP = "SP"
	sigCE = "CE"
	sigST = "ST"
	sigER = "ER"
	sigPX = "PX"
	sigTF = "TF"
	sigNM = "NM"
	sigSL = "SL"
	sigCL = "CL"
	sigRE = "RE"
)

// spCheck are the check bytes of the SP entry that marks SUSP in use.
const spCheck = "\xBE\xEF"

// NM flags besides nmCont: the entry names "." or "..", not the file.
const (
	nmCurrent = 0x02
	nmParent  = 0x04
)

// rripIDs are the ER extension identifiers that announce Rock Ridge:
// RRIP 1.09 and 1.10 (genisoimage), 1.12 (this writer, xorriso).
var rripIDs = []string{"RRIP_1991A", erID, "IEEE_1282"}

// PX file modes are POSIX st_mode values; the file-type field is what
// the directory flag and the SL entry must agree with.
const (
	pxTypeMask = 0o170000
	pxFIFO     = 0o010000
	pxChar     = 0o020000
	pxDir      = 0o040000
	pxBlock    = 0o060000
	pxRegular  = 0o100000
	pxSymlink  = 0o120000
	pxSocket   = 0o140000
	pxSetuid   = 0o4000
	pxSetgid   = 0o2000
	pxSticky   = 0o1000
)

func entryHeader(sig string, length int) []byte {
	b := make([]byte, length)
	b[0], b[1], b[2], b[3] = sig[0], sig[1], byte(length), 1
	return b
}

func bothEndian32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func bothEndian16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func spEntry() []byte {
	b := entryHeader(sigSP, 7)
	b[4], b[5], b[6] = spCheck[0], spCheck[1], 0
	return b
}

func erEntry() []byte {
	b := entryHeader(sigER, 8+len(erID)+len(erDesc)+len(erSource))
	b[4], b[5], b[6], b[7] = byte(len(erID)), byte(len(erDesc)), byte(len(erSource)), 1
	copy(b[8:], erID+erDesc+erSource)
	return b
}

func pxEntry(ino *inode) []byte {
	b := entryHeader(sigPX, 44)
	bothEndian32(b[4:], ino.mode)
	bothEndian32(b[12:], ino.nlink)
	bothEndian32(b[20:], ino.uid)
	bothEndian32(b[28:], ino.gid)
	bothEndian32(b[36:], ino.serial)
	return b
}

func tfEntry(t time.Time) []byte {
	b := entryHeader(sigTF, 5+3*7)
	b[4] = tfFlags
	for i := 0; i < 3; i++ {
		putRecDate(b[5+7*i:], t)
	}
	return b
}

func ceEntry(p cePos, regionLBA uint32) []byte {
	b := entryHeader(sigCE, ceLen)
	bothEndian32(b[4:], regionLBA+p.sector)
	bothEndian32(b[12:], p.offset)
	bothEndian32(b[20:], p.length)
	return b
}

// nmEntries splits a name into NM entries of at most 255 bytes.
func nmEntries(name string) [][]byte {
	var out [][]byte
	const room = maxEntry - 5
	for len(name) > 0 {
		part := name
		flags := byte(0)
		if len(part) > room {
			part, flags = part[:room], nmCont
		}
		e := entryHeader(sigNM, 5+len(part))
		e[4] = flags
		copy(e[5:], part)
		out = append(out, e)
		name = name[len(part):]
	}
	return out
}

type slComponent struct {
	flags byte
	text  string
}

// slComponents turns a symlink target into SL component records.
func slComponents(target string) []slComponent {
	var comps []slComponent
	if strings.HasPrefix(target, "/") {
		comps = append(comps, slComponent{flags: slRoot})
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "":
			continue
		case ".":
			comps = append(comps, slComponent{flags: slCurrent})
		case "..":
			comps = append(comps, slComponent{flags: slParent})
		default:
			comps = append(comps, slComponent{text: part})
		}
	}
	return comps
}

// slEntries packs component records into SL entries of at most 255 bytes.
// An entry is always cut inside a text component (flagged CONTINUE), never
// between two components: libarchive joins consecutive SL entries without
// a separator, so a cut between components would lose a '/'. Linux,
// libisofs and the specification read both forms the same way.
func slEntries(target string) [][]byte {
	comps := slComponents(target)
	var entries [][]slComponent
	var cur []slComponent
	size := 5
	closeEntry := func() {
		entries = append(entries, cur)
		cur, size = nil, 5
	}
	for i := 0; i < len(comps); i++ {
		c := comps[i]
		if size+2+len(c.text) <= maxEntry {
			cur = append(cur, c)
			size += 2 + len(c.text)
			continue
		}
		if room := maxEntry - size - 2; c.text != "" && room >= 1 {
			cur = append(cur, slComponent{flags: c.flags | slCont, text: c.text[:room]})
			comps[i].text = c.text[room:]
			closeEntry()
			i--
			continue
		}
		if n := len(cur); n > 0 && len(cur[n-1].text) >= 2 && cur[n-1].flags&slCont == 0 {
			last := &cur[n-1]
			moved := last.text[len(last.text)-1:]
			last.text = last.text[:len(last.text)-1]
			last.flags |= slCont
			closeEntry()
			cur, size = []slComponent{{text: moved}}, 5+2+len(moved)
		} else {
			closeEntry()
		}
		i--
	}
	entries = append(entries, cur)
	out := make([][]byte, 0, len(entries))
	for k, es := range entries {
		var body []byte
		for _, c := range es {
			body = append(body, c.flags, byte(len(c.text)))
			body = append(body, c.text...)
		}
		e := entryHeader(sigSL, 5+len(body))
		if k < len(entries)-1 {
			e[4] = slCont
		}
		copy(e[5:], body)
		out = append(out, e)
	}
	return out
}

// rrEntries lists the Rock Ridge entries of a node's own directory record.
func rrEntries(n *node) [][]byte {
	es := [][]byte{pxEntry(n.ino), tfEntry(n.ino.mtime)}
	es = append(es, nmEntries(n.name)...)
	if n.kind == kindSymlink {
		es = append(es, slEntries(n.target)...)
	}
	return es
}

// cePos places a continuation area inside the continuation region.
type cePos struct {
	sector, offset, length uint32
}

// ceAllocator hands out continuation areas; an area never crosses a
// sector boundary, which Linux requires.
type ceAllocator struct {
	sector, offset uint32
	used           bool
}

func (a *ceAllocator) alloc(n int) cePos {
	if a.offset+uint32(n) > sectorSize {
		a.sector++
		a.offset = 0
	}
	p := cePos{a.sector, a.offset, uint32(n)}
	a.offset += uint32(n)
	a.used = true
	return p
}

func (a *ceAllocator) sectors() uint32 {
	if !a.used {
		return 0
	}
	if a.offset == 0 {
		return a.sector
	}
	return a.sector + 1
}

// pack splits entries into the part that fits in the directory record
// (inline bytes at most) and continuation areas of at most one sector, each
// area but the last ending with a CE entry pointing at the next one. It
// returns the sizes; areas are allocated through alloc only when given.
func pack(es [][]byte, inline int) (parts [][][]byte) {
	suffix := make([]int, len(es)+1)
	for i := len(es) - 1; i >= 0; i-- {
		suffix[i] = suffix[i+1] + len(es[i])
	}
	limit := inline
	var cur [][]byte
	size := 0
	for i, e := range es {
		need := len(e)
		if size+suffix[i] > limit {
			need += ceLen // the rest spills over: keep room for the CE entry
		}
		if size+need > limit {
			parts = append(parts, cur)
			cur, size, limit = nil, 0, sectorSize
		}
		cur = append(cur, e)
		size += len(e)
	}
	return append(parts, cur)
}

func partLen(p [][]byte) int {
	n := 0
	for _, e := range p {
		n += len(e)
	}
	return n
}

// areaSizes returns the byte size of each continuation area in a packing,
// counting the CE entry that links an area to the next.
func areaSizes(parts [][][]byte) []int {
	sizes := make([]int, 0, len(parts)-1)
	for i := 1; i < len(parts); i++ {
		s := partLen(parts[i])
		if i < len(parts)-1 {
			s += ceLen
		}
		sizes = append(sizes, s)
	}
	return sizes
}

// assemble builds the inline system-use bytes and the continuation areas'
// bytes of a packing, given the areas' positions.
func assemble(parts [][][]byte, pos []cePos, regionLBA uint32) (inline []byte, areas [][]byte) {
	join := func(p [][]byte, next int) []byte {
		var b []byte
		for _, e := range p {
			b = append(b, e...)
		}
		if next < len(pos) && next >= 0 {
			b = append(b, ceEntry(pos[next], regionLBA)...)
		}
		return b
	}
	inline = join(parts[0], 0)
	for i := 1; i < len(parts); i++ {
		areas = append(areas, join(parts[i], i))
	}
	return inline, areas
}
