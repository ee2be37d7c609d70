package iso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// The reader opens ISO 9660 images such as Solution archives: the volume
// descriptors (volume ID, Joliet), Rock Ridge detection, and the primary
// and Joliet directory trees with their Rock Ridge names, modes and
// symbolic links, so that an image can be checked without mounting or
// extracting it.
//
// It exists because the readers at hand do not fit: kdomanski/iso9660 only
// recognises the RRIP 1.10 extension ID, so images written with RRIP 1.12
// (this writer, xorriso) lose their long names there, and it hides symbolic
// links and modes, which validation must see to refuse links out of the
// archive and special files.
//
// The input is untrusted. Every offset and length is bounds-checked, and
// what the image claims never sizes an allocation: the limits below, and
// budgets tied to the image's real size, bound memory and time. A
// structural fault below the root becomes a Problem naming its path
// instead of aborting the walk, so that a validator can report all of
// them; a record whose directory flag, Rock Ridge mode and entries
// disagree is such a fault, never something to guess about. Only an image
// whose volume descriptors cannot be read is an error.

// Limits on what an image may hold. They are far above what a real image
// needs; an image beyond them gets a Problem, and the entries past the
// limit are left out.
const (
	// MaxNameLen is the longest name, in bytes, of an entry in either
	// tree: the Linux NAME_MAX, which Rock Ridge NM names follow.
	MaxNameLen = 255
	// MaxPathLen is the longest path from the root, in bytes, and the
	// longest symbolic link target: the Linux PATH_MAX.
	MaxPathLen = 4096
	// MaxEntries is the number of files, directories and links one tree
	// may hold.
	MaxEntries = 1 << 20
	// MaxTotalSize is the sum of the sizes of a tree's regular files,
	// hard links and shared extents each counted as often as they appear:
	// what copying every file out would write.
	MaxTotalSize = 1 << 40
	// MaxExtentReuse bounds how often an image's bytes are served as file
	// content: the distinct contents of a tree (files sharing one list of
	// extents count once) may total at most MaxExtentReuse times the
	// image's size. In an image written by a real tool, distinct
	// contents never overlap and total less than the image; files, or
	// pieces of a multi-extent file, that point at the same extent again
	// and again would make a reader hash the same bytes without end.
	MaxExtentReuse = 2
)

// Internal bounds on the structure.
const (
	maxDescriptors = 64 // volume descriptors before the terminator
	maxDepth       = 64 // directory nesting; MaxPathLen bounds it too
	maxDirSize     = 64 << 20
	maxCEHops      = 32       // continuation areas one record chains, as Linux (RR_MAX_CE_ENTRIES)
	maxSUSize      = 64 << 10 // system use bytes of one record, areas included
	maxLinkHops    = 40       // symbolic links followed in one lookup, as Linux (ELOOP)
)

// Image is an opened ISO image. It is an fs.FS of the primary tree, with
// Rock Ridge names, modes and links when the image has them; JolietFS
// gives the Joliet tree.
type Image struct {
	r    io.ReaderAt
	size int64
	// meta is what is left of the bytes the reader may read as metadata
	// (directory extents and continuation areas): the image's size. In a
	// real image no two directories or records share them.
	meta int64

	VolumeID       string // primary volume descriptor, trailing spaces trimmed
	Joliet         bool   // a supplementary descriptor with a Joliet escape sequence
	JolietVolumeID string
	// RockRidge: the root carries an SP entry and an ER entry naming RRIP
	// (RRIP_1991A, IEEE_P1282 or IEEE_1282).
	RockRidge bool
	RRIPID    string

	// Problems are the structural faults found while reading, in the
	// order found.
	Problems []Problem

	root, jroot *Entry
}

// Problem is a structural fault at a path of the image ("" for the image
// as a whole).
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Entry is one file, directory or link of a tree. FileInfo.Sys returns it.
type Entry struct {
	name string
	// ISOName is the identifier as recorded (e.g. "PRODUCT.TXT;1"; UTF-8
	// in the Joliet tree).
	ISOName string
	Mode    fs.FileMode // type and permission bits (Rock Ridge PX when present)
	Size    int64
	ModTime time.Time // Rock Ridge TF modification time, else the record's date
	Target  string    // symbolic link target (Rock Ridge SL)
	// The rest of PX (zero without Rock Ridge): what the writer's tests
	// check, and what tools that extract the image restore.
	Nlink, UID, GID, Ino uint32

	parent   *Entry
	children []*Entry // sorted by name; directories only
	extents  []Extent // regular files; nil when the data is refused
	pathLen  int
	tf       bool // the modification time comes from a TF entry
	// relocation marks a directory that only held directories relocated
	// elsewhere (genisoimage's rr_moved): Joliet has no counterpart.
	relocation bool
}

// Extent is one piece of a file's data.
type Extent struct {
	LBA  uint32 // first sector
	Size uint32 // bytes
}

// Name is the entry's name in its directory.
func (e *Entry) Name() string { return e.name }

// Path is the slash-separated path from the root ("." for the root).
func (e *Entry) Path() string {
	if e.parent == nil {
		return "."
	}
	b := make([]byte, e.pathLen)
	for x := e; x.parent != nil; x = x.parent {
		copy(b[x.pathLen-len(x.name):], x.name)
		if x.pathLen > len(x.name) {
			b[x.pathLen-len(x.name)-1] = '/'
		}
	}
	return string(b)
}

// Extents lists where a regular file's data lies, in order; nil when the
// reader refused the data (a Problem says why).
func (e *Entry) Extents() []Extent { return slices.Clone(e.extents) }

// ExtentKey identifies where an entry's data is stored: entries with the
// same key share their content (hard links, de-duplicated files).
func (e *Entry) ExtentKey() string {
	var b strings.Builder
	for _, x := range e.extents {
		fmt.Fprintf(&b, "%d+%d,", x.LBA, x.Size)
	}
	return b.String()
}

// Open reads the volume descriptors and walks the primary and Joliet trees.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	im := &Image{r: r, size: size, meta: size}
	var pvd, jolietRoot []byte
descriptors:
	for i := 0; ; i++ {
		if i == maxDescriptors {
			return nil, fmt.Errorf("no volume descriptor set terminator in the first %d descriptors", maxDescriptors)
		}
		sec, err := im.read(int64(16+i)*sectorSize, sectorSize)
		if err != nil {
			if pvd != nil {
				break descriptors // a truncated set after the PVD: read what there is
			}
			return nil, fmt.Errorf("reading volume descriptor %d: %w", i, err)
		}
		if string(sec[1:6]) != "CD001" {
			if i == 0 {
				return nil, errors.New("not an ISO 9660 image (no CD001 at sector 16)")
			}
			break descriptors
		}
		switch sec[0] {
		case volPrimary:
			if pvd == nil {
				pvd = sec
			}
		case volSupplement:
			esc := sec[88:120]
			if jolietRoot == nil && (bytes.Contains(esc, []byte("%/@")) || bytes.Contains(esc, []byte("%/C")) || bytes.Contains(esc, []byte("%/E"))) {
				im.Joliet = true
				im.JolietVolumeID = strings.TrimRight(decodeUCS2(sec[40:72]), " \x00")
				jolietRoot = sec[156:190]
			}
		case volTerminator:
			break descriptors
		}
	}
	if pvd == nil {
		return nil, errors.New("no primary volume descriptor")
	}
	if bs := binary.LittleEndian.Uint16(pvd[128:130]); bs != sectorSize {
		return nil, fmt.Errorf("logical block size %d; only %d is supported", bs, sectorSize)
	}
	im.VolumeID = strings.TrimRight(string(pvd[40:72]), " \x00")
	root, ok := parseRecord(pvd[156:190])
	if !ok || root.flags&flagDir == 0 {
		return nil, errors.New("the primary volume descriptor's root directory record is invalid")
	}
	im.root = im.walkTree(root, false)
	if jolietRoot != nil {
		if jr, ok := parseRecord(jolietRoot); !ok || jr.flags&flagDir == 0 {
			im.problem("", "the Joliet root directory record is invalid")
		} else {
			im.jroot = im.walkTree(jr, true)
		}
	}
	if im.RockRidge && im.jroot != nil {
		im.compareTrees()
	}
	return im, nil
}

func (im *Image) problem(p, msg string) { im.Problems = append(im.Problems, Problem{p, msg}) }

func (im *Image) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > im.size {
		return nil, fmt.Errorf("bytes %d-%d lie outside the %d-byte image", off, off+n, im.size)
	}
	b := make([]byte, n)
	if _, err := im.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && off+n == im.size) {
		return nil, err
	}
	return b, nil
}

// readMeta reads metadata within the budget of the image's size, so that
// records and directories pointing at the same bytes again and again cost
// no more than an image that really held them.
func (im *Image) readMeta(off, n int64) ([]byte, error) {
	if n > im.meta {
		return nil, fmt.Errorf("more metadata than the %d-byte image holds: directories or continuation areas are reused", im.size)
	}
	b, err := im.read(off, n)
	if err == nil {
		im.meta -= n
	}
	return b, err
}

type record struct {
	lba   uint32
	size  uint32
	date  time.Time
	flags byte
	name  []byte
	su    []byte
}

// parseRecord decodes one directory record (ECMA-119 9.1).
func parseRecord(b []byte) (record, bool) {
	if len(b) < 34 || int(b[0]) > len(b) || b[0] < 34 {
		return record{}, false
	}
	n := int(b[32])
	if 33+n > int(b[0]) {
		return record{}, false
	}
	r := record{
		lba:   binary.LittleEndian.Uint32(b[2:6]),
		size:  binary.LittleEndian.Uint32(b[10:14]),
		date:  decodeRecordDate(b[18:25]),
		flags: b[25],
		name:  b[33 : 33+n],
	}
	su := 33 + n
	if n%2 == 0 {
		su++ // padding byte after an even-length identifier
	}
	if su < int(b[0]) {
		r.su = b[su:b[0]]
	}
	return r, true
}

// decodeRecordDate decodes a 7-byte date (ECMA-119 9.1.5); the zero time when
// it is not a date.
func decodeRecordDate(b []byte) time.Time {
	if b[1] < 1 || b[1] > 12 || b[2] < 1 || b[2] > 31 || b[3] > 23 || b[4] > 59 || b[5] > 59 {
		return time.Time{}
	}
	off := int(int8(b[6])) * 15 * 60
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, time.FixedZone("", off)).UTC()
}

// dirRecords splits a directory extent into its records, "." and ".."
// included. A record never crosses a sector: a zero length byte ends a
// sector's records.
func dirRecords(data []byte) ([]record, error) {
	var recs []record
	for off := 0; off < len(data); {
		l := int(data[off])
		if l == 0 {
			off = (off/sectorSize + 1) * sectorSize
			continue
		}
		end := off + l
		if end > len(data) || off/sectorSize != (end-1)/sectorSize {
			return recs, fmt.Errorf("directory record at byte %d crosses its sector or the extent", off)
		}
		r, ok := parseRecord(data[off:end])
		if !ok {
			return recs, fmt.Errorf("malformed directory record at byte %d", off)
		}
		recs = append(recs, r)
		off = end
	}
	return recs, nil
}

// readDir reads and splits a directory extent.
func (im *Image) readDir(d record) ([]record, error) {
	if d.size > maxDirSize {
		return nil, fmt.Errorf("directory extent of %d bytes exceeds %d", d.size, maxDirSize)
	}
	data, err := im.readMeta(int64(d.lba)*sectorSize, int64(d.size))
	if err != nil {
		return nil, err
	}
	return dirRecords(data)
}

// suspEntries returns the SUSP entries of a system use field, following
// continuation areas (CE), skipping skip bytes first (SP's LEN_SKP).
func (im *Image) suspEntries(su []byte, skip int) ([][]byte, error) {
	var out [][]byte
	if skip > len(su) {
		return nil, nil
	}
	area := su[skip:]
	total := len(area)
	for hops := 0; ; hops++ {
		var next []byte
		for len(area) >= 4 {
			l := int(area[2])
			if l < 4 || l > len(area) {
				if area[0] == 0 {
					break // padding
				}
				return out, fmt.Errorf("SUSP entry %q with length %d overruns its area", area[:2], l)
			}
			e := area[:l]
			area = area[l:]
			switch string(e[:2]) {
			case sigST:
				area = nil
			case sigCE:
				if l != ceLen {
					return out, fmt.Errorf("CE entry of %d bytes, not %d", l, ceLen)
				}
				blk := binary.LittleEndian.Uint32(e[4:8])
				off := binary.LittleEndian.Uint32(e[12:16])
				n := binary.LittleEndian.Uint32(e[20:24])
				if uint64(off)+uint64(n) > sectorSize {
					// Linux refuses an area that crosses a sector too.
					return out, fmt.Errorf("continuation area at offset %d of %d bytes crosses its sector", off, n)
				}
				if total+int(n) > maxSUSize {
					return out, fmt.Errorf("system use of more than %d bytes", maxSUSize)
				}
				b, err := im.readMeta(int64(blk)*sectorSize+int64(off), int64(n))
				if err != nil {
					return out, fmt.Errorf("continuation area: %w", err)
				}
				next = b
				total += int(n)
			default:
				out = append(out, e)
			}
		}
		if next == nil {
			return out, nil
		}
		if hops == maxCEHops {
			return out, fmt.Errorf("more than %d chained continuation areas", maxCEHops)
		}
		area = next
	}
}

// rr is what Rock Ridge says about a record.
type rr struct {
	name, target     string
	hasName, hasMode bool
	mode             uint32
	nlink, uid, gid  uint32
	ino              uint32
	mtime            time.Time
	childLink        uint32
	hasCL, relocated bool
	linkSet          bool
}

// decodeRR decodes the Rock Ridge entries of one record. Names and
// targets are bounded by MaxNameLen and MaxPathLen as they are joined,
// so entries repeated through continuation areas cannot grow them.
func decodeRR(entries [][]byte) (rr, error) {
	var info rr
	var name, link strings.Builder
	linkCont := false // the last SL component continues into the next one
	for _, e := range entries {
		data := e[4:]
		switch string(e[:2]) {
		case sigNM:
			if len(data) < 1 {
				return info, errors.New("short NM entry")
			}
			if data[0]&(nmCurrent|nmParent) != 0 {
				continue // "." or "..": not a name
			}
			if name.Len()+len(data)-1 > MaxNameLen {
				return info, fmt.Errorf("Rock Ridge name longer than %d bytes", MaxNameLen)
			}
			name.Write(data[1:])
			info.hasName = true
		case sigPX:
			// RRIP 1.10 (genisoimage) has no serial number: 32 bytes of data.
			if len(data) < 32 {
				return info, errors.New("short PX entry")
			}
			info.mode = binary.LittleEndian.Uint32(data[0:4])
			info.nlink = binary.LittleEndian.Uint32(data[8:12])
			info.uid = binary.LittleEndian.Uint32(data[16:20])
			info.gid = binary.LittleEndian.Uint32(data[24:28])
			if len(data) >= 40 {
				info.ino = binary.LittleEndian.Uint32(data[32:36])
			}
			info.hasMode = true
		case sigTF:
			info.mtime = tfModify(data)
		case sigSL:
			if len(data) < 1 {
				return info, errors.New("short SL entry")
			}
			comps := data[1:]
			for len(comps) > 0 {
				if len(comps) < 2 || 2+int(comps[1]) > len(comps) {
					return info, errors.New("SL component overruns its entry")
				}
				flags, content := comps[0], comps[2:2+int(comps[1])]
				comps = comps[2+int(comps[1]):]
				if info.linkSet && !linkCont && !(link.Len() == 1 && link.String() == "/") {
					link.WriteByte('/')
				}
				info.linkSet = true
				switch {
				case flags&slCurrent != 0:
					link.WriteString(".")
				case flags&slParent != 0:
					link.WriteString("..")
				case flags&slRoot != 0:
					link.Reset()
					link.WriteString("/")
				default:
					link.Write(content)
				}
				if link.Len() > MaxPathLen {
					return info, fmt.Errorf("symbolic link target longer than %d bytes", MaxPathLen)
				}
				linkCont = flags&slCont != 0
			}
		case sigCL:
			if len(data) < 8 {
				return info, errors.New("short CL entry")
			}
			info.childLink = binary.LittleEndian.Uint32(data[0:4])
			info.hasCL = true
		case sigRE:
			info.relocated = true
		}
	}
	info.name = name.String()
	info.target = link.String()
	return info, nil
}

// tfModify returns the modification time of a TF entry's data, or zero.
func tfModify(data []byte) time.Time {
	const creation, modify, longForm = 0x01, 0x02, 0x80
	if len(data) < 1 || data[0]&modify == 0 {
		return time.Time{}
	}
	size := 7
	if data[0]&longForm != 0 {
		size = 17
	}
	off := 1
	if data[0]&creation != 0 {
		off += size
	}
	if off+size > len(data) || size != 7 {
		return time.Time{} // 17-byte dates are not written by the tools at hand
	}
	return decodeRecordDate(data[off : off+size])
}

// fileMode maps a PX mode to fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&pxSetuid != 0 {
		mode |= fs.ModeSetuid
	}
	if m&pxSetgid != 0 {
		mode |= fs.ModeSetgid
	}
	if m&pxSticky != 0 {
		mode |= fs.ModeSticky
	}
	switch m & pxTypeMask {
	case pxDir:
		mode |= fs.ModeDir
	case pxRegular:
	case pxSymlink:
		mode |= fs.ModeSymlink
	case pxChar:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case pxBlock:
		mode |= fs.ModeDevice
	case pxFIFO:
		mode |= fs.ModeNamedPipe
	case pxSocket:
		mode |= fs.ModeSocket
	default:
		mode |= fs.ModeIrregular
	}
	return mode
}

// disagreement says how a record's directory flag, Rock Ridge mode and
// entries contradict each other, or "". Readers resolve such a record
// differently (the kernel and isoinfo trust PX, a walker trusting the flag
// would descend into a "directory" the kernel shows as a link to /etc),
// so it is refused rather than read one way.
func disagreement(r record, info rr, multi bool) string {
	isDir := r.flags&flagDir != 0
	switch {
	case isDir && multi:
		return "a directory record flagged as a multi-extent file"
	case isDir && info.hasCL:
		return "a directory record with a CL entry (CL belongs on the file record that stands for a relocated directory)"
	case !info.hasMode:
		if info.linkSet {
			return "a symbolic link target (SL) without a Rock Ridge mode (PX)"
		}
		return ""
	}
	typ := info.mode & pxTypeMask
	switch {
	case (isDir || info.hasCL) && typ != pxDir:
		return fmt.Sprintf("the directory flag says directory, Rock Ridge PX says %s", pxTypeName(typ))
	case !isDir && !info.hasCL && typ == pxDir:
		return "Rock Ridge PX says directory, but the record is not flagged as one"
	case info.linkSet && typ != pxSymlink:
		return fmt.Sprintf("a symbolic link target (SL) on a %s", pxTypeName(typ))
	case typ == pxSymlink && !info.linkSet:
		return "Rock Ridge PX says symbolic link, but there is no SL target"
	}
	return ""
}

func pxTypeName(t uint32) string {
	switch t {
	case pxDir:
		return "directory"
	case pxRegular:
		return "regular file"
	case pxSymlink:
		return "symbolic link"
	case pxChar:
		return "character device"
	case pxBlock:
		return "block device"
	case pxFIFO:
		return "named pipe"
	case pxSocket:
		return "socket"
	}
	return fmt.Sprintf("file type %#o", t)
}

// isoFallbackName is the name of a record without Rock Ridge: the
// identifier without its ";1" version and without the trailing '.' of a name
// with no extension.
func isoFallbackName(id string) string {
	if i := strings.LastIndexByte(id, ';'); i >= 0 {
		id = id[:i]
	}
	return strings.TrimSuffix(id, ".")
}

// jolietName decodes a Joliet identifier; genisoimage appends ";1" to
// file names, and a Joliet name cannot hold ';' otherwise.
func jolietName(id []byte) string {
	s := decodeUCS2(id)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return s
}

func decodeUCS2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.BigEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}

// walker reads one tree.
type walker struct {
	im     *Image
	joliet bool
	skip   int // SUSP LEN_SKP; -1 without SUSP
	seen   map[uint32]bool
	count  int
	full   bool // MaxEntries reached
}

func (w *walker) problem(p, msg string) {
	if w.joliet {
		msg = "Joliet tree: " + msg
	}
	w.im.problem(p, msg)
}

// walkTree reads the tree under root; in the primary tree it first
// detects Rock Ridge on the root's "." record.
func (im *Image) walkTree(root record, joliet bool) *Entry {
	top := &Entry{Mode: fs.ModeDir | 0o555, ModTime: root.date}
	w := &walker{im: im, joliet: joliet, skip: -1, seen: map[uint32]bool{root.lba: true}}
	recs, err := im.readDir(root)
	if err != nil {
		w.problem("", "the root directory cannot be read: "+err.Error())
		return top
	}
	if !joliet && len(recs) > 0 && isDot(recs[0], 0) {
		if su := recs[0].su; len(su) >= 7 && string(su[:2]) == sigSP && string(su[4:6]) == spCheck {
			w.skip = int(su[6])
			entries, err := im.suspEntries(su, 0)
			if err != nil {
				w.problem("", "root system use area: "+err.Error())
			}
			for _, e := range entries {
				if string(e[:2]) == sigER && len(e) >= 8 {
					if idLen := int(e[4]); 8+idLen <= len(e) {
						if id := string(e[8 : 8+idLen]); slices.Contains(rripIDs, id) {
							im.RockRidge, im.RRIPID = true, id
						}
					}
				}
			}
			if info, err := decodeRR(entries); err == nil && info.hasMode {
				if m := fileMode(info.mode); m.IsDir() {
					top.Mode = m
				} else {
					w.problem("", "the root's Rock Ridge PX says "+pxTypeName(info.mode&pxTypeMask))
				}
			}
		}
	}
	w.dir(top, recs, 0)
	im.checkData(w, top)
	return top
}

// isDot reports whether r is the "." (slot 0) or ".." (slot 1) record.
func isDot(r record, slot int) bool {
	return len(r.name) == 1 && r.name[0] == byte(slot) && r.flags&flagDir != 0
}

func (w *walker) dir(d *Entry, recs []record, depth int) {
	im := w.im
	dirPath := ""
	if d.parent != nil {
		dirPath = d.Path()
	}
	at := func(name string) string {
		if d.parent == nil {
			return name
		}
		return dirPath + "/" + name
	}
	// The first two slots belong to "." and ".." (ECMA-119 6.8.2.2):
	// readers skip them unread, while bsdtar and 7z list whatever record
	// sits there. A real entry in those slots is a fault, and is read
	// like any other entry so that nothing in it goes unchecked.
	for slot := 0; slot < 2; slot++ {
		if slot >= len(recs) {
			w.problem(dirPath, fmt.Sprintf("directory lacks its %q record", []string{".", ".."}[slot]))
			continue
		}
		if !isDot(recs[slot], slot) {
			w.problem(dirPath, fmt.Sprintf("record %d of the directory is %q (flags %#x), where the %q record (identifier %#x) belongs", slot, recs[slot].name, recs[slot].flags, []string{".", ".."}[slot], slot))
		}
	}
	names := map[string]bool{}
	var subdirs []*Entry
	var subrecs []record
	sawRelocated := false
	for i := 0; i < len(recs); i++ {
		if i < 2 && isDot(recs[i], i) {
			continue
		}
		r := recs[i]
		if i > 1 && (isDot(r, 0) || isDot(r, 1)) {
			w.problem(dirPath, fmt.Sprintf("a %q record at position %d", []string{".", ".."}[r.name[0]], i))
			continue
		}
		// A multi-extent file is a run of records with the same name,
		// all but the last flagged.
		exts := []Extent{{r.lba, r.size}}
		multi := false
		for r.flags&flagNotFinal != 0 {
			multi = true
			if i+1 >= len(recs) || !bytes.Equal(recs[i+1].name, r.name) {
				break // reported below: the last piece is missing
			}
			i++
			r = recs[i]
			exts = append(exts, Extent{r.lba, r.size})
		}
		if w.count++; w.count > MaxEntries {
			if !w.full {
				w.problem(dirPath, fmt.Sprintf("more than %d entries; the rest is not read", MaxEntries))
			}
			w.full = true
			return
		}
		isoName := string(r.name)
		name := isoFallbackName(isoName)
		if w.joliet {
			isoName = decodeUCS2(r.name)
			name = jolietName(r.name)
		}
		var info rr
		if w.skip >= 0 {
			entries, err := im.suspEntries(r.su, w.skip)
			if err == nil {
				info, err = decodeRR(entries)
			}
			if err != nil {
				w.problem(at(name), "Rock Ridge entries: "+err.Error())
				continue
			}
		}
		if info.relocated {
			sawRelocated = true
			continue // shown where its CL entry points from
		}
		if info.hasName {
			name = info.name
		}
		p := at(name)
		switch {
		case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
			w.problem(at(fmt.Sprintf("%q", name)), fmt.Sprintf("invalid file name %q (record %q)", name, isoName))
			continue
		case !utf8.ValidString(name):
			// io/fs paths are UTF-8, and so are Rock Ridge names in
			// practice: such a name is reported, not mangled.
			w.problem(at(strings.ToValidUTF8(name, "\uFFFD")), fmt.Sprintf("name %q is not UTF-8", name))
			continue
		case len(name) > MaxNameLen:
			w.problem(at(name[:64]+"..."), fmt.Sprintf("name of %d bytes; at most %d are read", len(name), MaxNameLen))
			continue
		case d.pathLen+1+len(name) > MaxPathLen:
			w.problem(dirPath, fmt.Sprintf("the entry %q makes a path longer than %d bytes", name, MaxPathLen))
			continue
		case names[name]:
			w.problem(p, "the name appears twice in its directory")
			continue
		}
		names[name] = true
		if r.flags&flagNotFinal != 0 {
			w.problem(p, "multi-extent file without its last record")
			continue
		}
		if msg := disagreement(r, info, multi); msg != "" {
			w.problem(p, msg+"; readers would disagree on what it is, so it is not read")
			continue
		}
		isDir := r.flags&flagDir != 0 || info.hasCL
		e := &Entry{name: name, ISOName: isoName, parent: d, pathLen: len(name), ModTime: r.date,
			Nlink: info.nlink, UID: info.uid, GID: info.gid, Ino: info.ino}
		if d.parent != nil {
			e.pathLen += d.pathLen + 1
		}
		if !info.mtime.IsZero() {
			e.ModTime, e.tf = info.mtime, true
		}
		switch {
		case info.hasMode:
			e.Mode = fileMode(info.mode)
		case isDir:
			e.Mode = fs.ModeDir | 0o555
		default:
			e.Mode = 0o444
		}
		e.Target = info.target
		if e.Mode.IsRegular() {
			e.extents = exts
			for _, x := range exts {
				e.Size += int64(x.Size)
			}
			if msg := extentFault(exts, im.size); msg != "" {
				w.problem(p, msg)
				e.extents = nil
			}
		}
		d.children = append(d.children, e)
		if !isDir {
			continue
		}
		child := r
		if info.hasCL {
			// A relocated deep directory: its content lives where CL points.
			sec, err := im.read(int64(info.childLink)*sectorSize, sectorSize)
			if err != nil {
				w.problem(p, "relocated directory: "+err.Error())
				continue
			}
			dot, ok := parseRecord(sec)
			if !ok || !isDot(dot, 0) {
				w.problem(p, "relocated directory has no '.' record")
				continue
			}
			child = dot
		}
		if w.seen[child.lba] {
			w.problem(p, "directory loop: its extent is already part of the tree")
			continue
		}
		w.seen[child.lba] = true
		subdirs = append(subdirs, e)
		subrecs = append(subrecs, child)
	}
	slices.SortFunc(d.children, func(a, b *Entry) int { return strings.Compare(a.name, b.name) })
	d.relocation = sawRelocated && len(d.children) == 0 && d.parent != nil && d.parent.parent == nil
	for k, e := range subdirs {
		if w.full {
			return
		}
		if depth+1 > maxDepth {
			w.problem(e.Path(), fmt.Sprintf("nested more than %d levels deep; not read", maxDepth))
			continue
		}
		sub, err := im.readDir(subrecs[k])
		if err != nil {
			w.problem(e.Path(), "directory cannot be read: "+err.Error())
			continue
		}
		w.dir(e, sub, depth+1)
	}
}

// extentFault says why a regular file's data cannot be served, or "".
func extentFault(exts []Extent, size int64) string {
	for _, x := range exts {
		if int64(x.LBA)*sectorSize+int64(x.Size) > size {
			return fmt.Sprintf("its data (sector %d, %d bytes) lies outside the image", x.LBA, x.Size)
		}
	}
	if len(exts) < 2 {
		return ""
	}
	// Writers give the pieces of a multi-extent file consecutive,
	// disjoint sectors; pieces that overlap serve the same bytes again.
	s := slices.Clone(exts)
	slices.SortFunc(s, func(a, b Extent) int { return int(int64(a.LBA) - int64(b.LBA)) })
	for i := 1; i < len(s); i++ {
		if int64(s[i-1].LBA)*sectorSize+int64(s[i-1].Size) > int64(s[i].LBA)*sectorSize {
			return fmt.Sprintf("pieces of the multi-extent file overlap (sector %d is used twice); its data is not read", s[i].LBA)
		}
	}
	return ""
}

// checkData bounds what the tree's files serve: MaxTotalSize bytes in
// all, and distinct contents of at most MaxExtentReuse times the image's
// size. A file past either bound gets a Problem and no data.
func (im *Image) checkData(w *walker, root *Entry) {
	seen := map[string]bool{}
	var logical, distinct int64
	budget := MaxExtentReuse * im.size
	walkEntries(root, func(e *Entry) {
		if !e.Mode.IsRegular() || e.extents == nil {
			return
		}
		logical += e.Size
		if logical > MaxTotalSize {
			w.problem(e.Path(), fmt.Sprintf("the files total more than %d bytes; its data is not read", int64(MaxTotalSize)))
			e.extents = nil
			return
		}
		k := e.ExtentKey()
		if seen[k] {
			return
		}
		if distinct+e.Size > budget {
			w.problem(e.Path(), fmt.Sprintf("its %d bytes would bring the distinct file contents past %d times the image's %d bytes: extents are reused; its data is not read", e.Size, MaxExtentReuse, im.size))
			e.extents = nil
			return
		}
		distinct += e.Size
		seen[k] = true
	})
}

// walkEntries calls fn on every entry under root, parents first, in name
// order.
func walkEntries(root *Entry, fn func(*Entry)) {
	for _, c := range root.children {
		fn(c)
		if c.Mode.IsDir() {
			walkEntries(c, fn)
		}
	}
}

// child returns the entry named name in directory e, or nil.
func (e *Entry) child(name string) *Entry {
	i, ok := slices.BinarySearchFunc(e.children, name, func(c *Entry, n string) int { return strings.Compare(c.name, n) })
	if !ok {
		return nil
	}
	return e.children[i]
}

// Entries returns every entry of the primary tree, parents first, in name
// order.
func (im *Image) Entries() []*Entry {
	var out []*Entry
	walkEntries(im.root, func(e *Entry) { out = append(out, e) })
	return out
}
