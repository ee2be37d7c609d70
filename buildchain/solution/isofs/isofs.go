// Package isofs reads the ISO 9660 images that Solution archives are: the
// volume descriptors (volume ID, Joliet), Rock Ridge detection, and the
// primary directory tree with its Rock Ridge names, modes and symbolic links,
// so that an archive can be validated without mounting or extracting it.
//
// It exists because the readers at hand do not fit: kdomanski/iso9660 only
// recognises the RRIP 1.10 extension ID, so archives written with RRIP 1.12
// (our writer, xorriso) lose their long names there, and it hides symbolic
// links and modes, which validation must see to refuse links out of the
// archive and special files.
//
// The input is untrusted: every offset and length is bounds-checked,
// continuation areas, directory depth, entry counts and directory loops are
// bounded, and a structural problem below the root becomes a Problem naming
// its path instead of aborting the walk, so a validator can report all of
// them. Only an image whose volume descriptors cannot be read is an error.
package isofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"unicode/utf16"
)

// SectorSize is the only logical block size accepted (what every writer uses).
const SectorSize = 2048

// Limits on untrusted structure, far above what a real archive needs.
const (
	maxDescriptors = 64      // volume descriptors before the terminator
	maxEntries     = 1 << 20 // entries in the whole tree
	maxDepth       = 64      // directory nesting
	maxDirSize     = 64 << 20
	maxCEHops      = 64 // continuation areas per record
	maxSUSize      = 1 << 16
)

// Image is an opened ISO image.
type Image struct {
	r    io.ReaderAt
	size int64

	VolumeID       string // primary volume descriptor, trailing spaces trimmed
	Joliet         bool   // a supplementary descriptor with a Joliet escape sequence
	JolietVolumeID string
	// RockRidge: the root carries an SP entry and an ER entry naming RRIP
	// (RRIP_1991A, IEEE_P1282 or IEEE_1282).
	RockRidge bool
	RRIPID    string

	Entries  []Entry   // every file, directory and link, in walk order (parents first)
	Problems []Problem // structural problems found while walking
}

// Entry is one node of the tree.
type Entry struct {
	Path string // slash-separated, relative to the root; Rock Ridge name when present
	// ISOName is the primary ISO 9660 identifier as recorded (e.g. "PRODUCT.TXT;1").
	ISOName string
	Mode    fs.FileMode // type and permission bits (from Rock Ridge PX when present)
	Size    int64
	Target  string // symbolic link target (Rock Ridge SL)
	extents []extent
}

type extent struct {
	lba  uint32
	size uint32
}

// Problem is a structural fault at a path of the image.
type Problem struct {
	Path string
	Msg  string
}

// Open reads the volume descriptors and walks the primary tree.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	im := &Image{r: r, size: size}
	var pvd []byte
	var jolietRoot []byte
descriptors:
	for i := 0; ; i++ {
		if i == maxDescriptors {
			return nil, fmt.Errorf("no volume descriptor set terminator in the first %d descriptors", maxDescriptors)
		}
		sec, err := im.sector(uint32(16 + i))
		if err != nil {
			if pvd != nil {
				break descriptors // a truncated set after the PVD: read what we have
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
		case 1:
			if pvd == nil {
				pvd = sec
			}
		case 2:
			esc := sec[88:120]
			if bytes.Contains(esc, []byte("%/@")) || bytes.Contains(esc, []byte("%/C")) || bytes.Contains(esc, []byte("%/E")) {
				im.Joliet = true
				im.JolietVolumeID = strings.TrimRight(ucs2(sec[40:72]), " \x00")
				jolietRoot = sec[156:190]
			}
		case 255:
			break descriptors
		}
	}
	if pvd == nil {
		return nil, errors.New("no primary volume descriptor")
	}
	if bs := binary.LittleEndian.Uint16(pvd[128:130]); bs != SectorSize {
		return nil, fmt.Errorf("logical block size %d; only %d is supported", bs, SectorSize)
	}
	im.VolumeID = strings.TrimRight(string(pvd[40:72]), " \x00")
	root, ok := parseRecord(pvd[156:190])
	if !ok || root.flags&flagDir == 0 {
		return nil, errors.New("the primary volume descriptor's root directory record is invalid")
	}
	if jolietRoot != nil {
		if jr, ok := parseRecord(jolietRoot); !ok || jr.flags&flagDir == 0 {
			im.problem("", "the Joliet root directory record is invalid")
		} else if _, err := im.readDir(jr); err != nil {
			im.problem("", "the Joliet root directory cannot be read: "+err.Error())
		}
	}
	im.walkRoot(root)
	return im, nil
}

func (im *Image) problem(p, msg string) { im.Problems = append(im.Problems, Problem{p, msg}) }

func (im *Image) sector(lba uint32) ([]byte, error) {
	return im.read(int64(lba)*SectorSize, SectorSize)
}

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

const (
	flagHidden = 0x01
	flagDir    = 0x02
	flagMulti  = 0x80
)

type record struct {
	lba   uint32
	size  uint32
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

// readDir returns the records of a directory extent, "." and ".." included.
func (im *Image) readDir(d record) ([]record, error) {
	if d.size > maxDirSize {
		return nil, fmt.Errorf("directory extent of %d bytes exceeds %d", d.size, maxDirSize)
	}
	data, err := im.read(int64(d.lba)*SectorSize, int64(d.size))
	if err != nil {
		return nil, err
	}
	var recs []record
	for off := 0; off < len(data); {
		l := int(data[off])
		if l == 0 {
			// Records never cross a sector: the rest of this one is padding.
			off = (off/SectorSize + 1) * SectorSize
			continue
		}
		end := off + l
		if end > len(data) || (off/SectorSize != (end-1)/SectorSize) {
			return recs, fmt.Errorf("directory record at byte %d crosses its sector or the extent", off)
		}
		r, ok := parseRecord(data[off:end])
		if !ok {
			return recs, fmt.Errorf("malformed directory record at byte %d", off)
		}
		recs = append(recs, r)
		off = end
	}
	if len(recs) < 2 {
		return recs, errors.New("directory lacks its '.' and '..' records")
	}
	return recs, nil
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
			case "ST":
				area = nil
			case "CE":
				if l < 28 {
					return out, errors.New("short CE entry")
				}
				blk := binary.LittleEndian.Uint32(e[4:8])
				off := binary.LittleEndian.Uint32(e[12:16])
				n := binary.LittleEndian.Uint32(e[20:24])
				if int(n) > maxSUSize || total+int(n) > maxSUSize {
					return out, fmt.Errorf("continuation area of %d bytes is too large", n)
				}
				b, err := im.read(int64(blk)*SectorSize+int64(off), int64(n))
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
	name, target      string
	hasName, hasMode  bool
	mode              uint32
	childLink         uint32
	hasCL, relocated  bool
	nameCont, linkSet bool
}

func decodeRR(entries [][]byte) (rr, error) {
	var info rr
	var name, link strings.Builder
	linkCont := false // the last SL component continues into the next one
	for _, e := range entries {
		data := e[4:]
		switch string(e[:2]) {
		case "NM":
			if len(data) < 1 {
				return info, errors.New("short NM entry")
			}
			if data[0]&0x06 != 0 {
				continue // "." or "..": not a name
			}
			name.Write(data[1:])
			info.hasName = true
			info.nameCont = data[0]&1 != 0
		case "PX":
			if len(data) < 8 {
				return info, errors.New("short PX entry")
			}
			info.mode = binary.LittleEndian.Uint32(data[0:4])
			info.hasMode = true
		case "SL":
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
				case flags&0x02 != 0:
					link.WriteString(".")
				case flags&0x04 != 0:
					link.WriteString("..")
				case flags&0x08 != 0:
					link.Reset()
					link.WriteString("/")
				default:
					link.Write(content)
				}
				linkCont = flags&0x01 != 0
			}
		case "CL":
			if len(data) < 8 {
				return info, errors.New("short CL entry")
			}
			info.childLink = binary.LittleEndian.Uint32(data[0:4])
			info.hasCL = true
		case "RE":
			info.relocated = true
		}
	}
	info.name = name.String()
	info.target = link.String()
	return info, nil
}

// walkRoot detects Rock Ridge on the root's "." record and walks the tree.
func (im *Image) walkRoot(root record) {
	recs, err := im.readDir(root)
	if err != nil {
		im.problem("", "the root directory cannot be read: "+err.Error())
		return
	}
	skip := -1
	if su := recs[0].su; len(su) >= 7 && string(su[:2]) == "SP" && su[4] == 0xBE && su[5] == 0xEF {
		skip = int(su[6])
		entries, err := im.suspEntries(su, 0)
		if err != nil {
			im.problem("", "root system use area: "+err.Error())
		}
		for _, e := range entries {
			if string(e[:2]) == "ER" && len(e) >= 8 {
				idLen := int(e[4])
				if 8+idLen <= len(e) {
					id := string(e[8 : 8+idLen])
					switch id {
					case "RRIP_1991A", "IEEE_P1282", "IEEE_1282":
						im.RockRidge = true
						im.RRIPID = id
					}
				}
			}
		}
	}
	w := &walker{im: im, skip: skip, seen: map[uint32]bool{root.lba: true}}
	w.dir("", recs, 0)
}

type walker struct {
	im    *Image
	skip  int // SUSP LEN_SKP; -1 without SUSP
	seen  map[uint32]bool
	count int
}

func (w *walker) dir(dirPath string, recs []record, depth int) {
	im := w.im
	names := map[string]bool{}
	for i := 2; i < len(recs); i++ {
		r := recs[i]
		// A multi-extent file is a run of records with the same name,
		// all but the last flagged; gather its extents.
		exts := []extent{{r.lba, r.size}}
		for r.flags&flagMulti != 0 && i+1 < len(recs) && bytes.Equal(recs[i+1].name, r.name) {
			i++
			r = recs[i]
			exts = append(exts, extent{r.lba, r.size})
		}
		w.count++
		if w.count > maxEntries {
			im.problem(dirPath, fmt.Sprintf("more than %d entries in the image; stopped reading", maxEntries))
			return
		}
		isoName := string(r.name)
		name := isoFallbackName(isoName)
		var info rr
		if w.skip >= 0 {
			entries, err := im.suspEntries(r.su, w.skip)
			if err == nil {
				info, err = decodeRR(entries)
			}
			if err != nil {
				im.problem(path.Join(dirPath, name), "Rock Ridge entries: "+err.Error())
			}
		}
		if info.relocated {
			continue // shown where its CL entry points from
		}
		if info.hasName {
			name = info.name
		}
		p := path.Join(dirPath, name)
		if dirPath == "" {
			p = name
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			im.problem(path.Join(dirPath, fmt.Sprintf("%q", name)), fmt.Sprintf("invalid file name %q (record %s)", name, isoName))
			continue
		}
		if names[name] {
			im.problem(p, "the name appears twice in its directory")
			continue
		}
		names[name] = true
		e := Entry{Path: p, ISOName: isoName, extents: exts}
		for _, x := range exts {
			e.Size += int64(x.size)
		}
		isDir := r.flags&flagDir != 0 || info.hasCL
		switch {
		case info.hasMode:
			e.Mode = modeFromPosix(info.mode)
			if e.Mode.IsDir() != isDir && e.Mode&fs.ModeSymlink == 0 {
				im.problem(p, "Rock Ridge mode and the directory flag disagree")
			}
		case isDir:
			e.Mode = fs.ModeDir | 0o555
		default:
			e.Mode = 0o444
		}
		if info.linkSet {
			e.Target = info.target
			if e.Mode&fs.ModeSymlink == 0 {
				im.problem(p, "has a symbolic link target but is not a symbolic link")
			}
		}
		if !isDir {
			for _, x := range exts {
				if int64(x.lba)*SectorSize+int64(x.size) > im.size {
					im.problem(p, fmt.Sprintf("its data (sector %d, %d bytes) lies outside the image", x.lba, x.size))
					e.extents = nil
					break
				}
			}
			if e.Mode.IsDir() {
				e.Mode = 0o444 // keep the entry coherent; the problem is reported
			}
		}
		if isDir {
			e.Mode = e.Mode&^fs.ModeType | fs.ModeDir
			e.Size = 0
			e.extents = nil
		}
		im.Entries = append(im.Entries, e)
		if !isDir {
			continue
		}
		child := r
		if info.hasCL {
			// A relocated deep directory: its content lives where CL points.
			sec, err := im.sector(info.childLink)
			if err != nil {
				im.problem(p, "relocated directory: "+err.Error())
				continue
			}
			dot, ok := parseRecord(sec)
			if !ok {
				im.problem(p, "relocated directory has no '.' record")
				continue
			}
			child = dot
		}
		if w.seen[child.lba] {
			im.problem(p, "directory loop: its extent is already part of the tree")
			continue
		}
		w.seen[child.lba] = true
		if depth+1 > maxDepth {
			im.problem(p, fmt.Sprintf("nested more than %d levels deep; not read", maxDepth))
			continue
		}
		sub, err := im.readDir(child)
		if err != nil {
			im.problem(p, "directory cannot be read: "+err.Error())
		}
		if len(sub) >= 2 {
			w.dir(p, sub, depth+1)
		}
	}
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

func modeFromPosix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o100000:
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	default:
		mode |= fs.ModeIrregular
	}
	return mode
}

// Open returns the content of a regular file entry.
func (im *Image) Open(e Entry) (io.Reader, error) {
	if !e.Mode.IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", e.Path)
	}
	if e.extents == nil && e.Size > 0 {
		return nil, fmt.Errorf("%s: its data lies outside the image", e.Path)
	}
	rs := make([]io.Reader, 0, len(e.extents))
	for _, x := range e.extents {
		rs = append(rs, io.NewSectionReader(im.r, int64(x.lba)*SectorSize, int64(x.size)))
	}
	return io.MultiReader(rs...), nil
}

func ucs2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.BigEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}

// ExtentKey identifies where an entry's data is stored: entries with the
// same key share their content (hard links, de-duplicated files).
func (e Entry) ExtentKey() string {
	var b strings.Builder
	for _, x := range e.extents {
		fmt.Fprintf(&b, "%d+%d,", x.lba, x.size)
	}
	return b.String()
}
