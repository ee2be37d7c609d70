package iso

import (
	"encoding/binary"
	"fmt"
	"time"
)

// plan is the complete layout of an image, computed before any byte is
// written so that the output can be produced in one sequential pass:
//
//	0-15   system area (zeros)
//	16     primary volume descriptor
//	17     Joliet supplementary volume descriptor (with Joliet)
//	       volume descriptor set terminator
//	       path tables: primary L and M, then Joliet L and M
//	       primary directory extents, in path table order, each followed
//	       by the Rock Ridge continuation areas of its records (readers
//	       that stream, like libarchive, need a directory's names before
//	       they reach its subdirectories)
//	       Joliet directory extents, in path table order
//	       file data, one extent per distinct content, in tree order
//	       padSectors of zeros
type plan struct {
	b          *Builder
	dirs       []*node // primary path table order
	jdirs      []*node // Joliet path table order
	extents    []*extent
	files      int
	shared     int64
	ptSize     uint32
	jptSize    uint32
	lPT, mPT   uint32
	jlPT, jmPT uint32
	dataLBA    uint32
	total      uint32 // sectors in the image
	jolietMax  int
	emptyLBA   uint32
}

func sectorsFor(n int64) uint32 { return uint32((n + sectorSize - 1) / sectorSize) }

func (p *plan) rr() bool     { return p.b.opts.RockRidge }
func (p *plan) joliet() bool { return p.b.opts.Joliet }

// recordLen is the length of a directory record with an identifier of n
// bytes and su bytes of system use, padded to even as ECMA-119 requires.
func recordLen(n, su int) int {
	l := 33 + n
	if n%2 == 0 {
		l++
	}
	l += su
	return l + l%2
}

// inlineRoom is how much system use fits in a record with an n-byte
// identifier, keeping the length even and at most 255.
func inlineRoom(n int) int { return 254 - recordLen(n, 0) }

func (p *plan) dotEntries(dir *node, root bool) [][]byte {
	var es [][]byte
	if root {
		es = append(es, spEntry())
	}
	es = append(es, pxEntry(dir.ino), tfEntry(dir.ino.mtime))
	if root {
		es = append(es, erEntry())
	}
	return es
}

// extentCount is how many directory records a node needs: files over
// 4 GiB - 1 are split into multi-extent records.
func extentCount(n *node) int {
	if n.kind != kindFile || n.ino.size <= maxExtent {
		return 1
	}
	return int((n.ino.size + maxExtent - 1) / maxExtent)
}

func newPlan(b *Builder) (*plan, error) {
	if err := b.freeze(); err != nil {
		return nil, err
	}
	p := &plan{b: b, jolietMax: 64}
	if b.opts.JolietLong {
		p.jolietMax = 103
	}
	// Path table order is breadth first with children sorted, which is
	// also the order of directory numbers.
	p.dirs = []*node{b.root}
	for i := 0; i < len(p.dirs); i++ {
		d := p.dirs[i]
		d.ptNum = i + 1
		assignPrimaryNames(d)
		if p.joliet() {
			assignJolietNames(d, p.jolietMax)
		}
		for _, c := range d.children {
			if c.kind == kindDir {
				p.dirs = append(p.dirs, c)
			}
		}
		if len(p.dirs) > maxDirs {
			return nil, fmt.Errorf("iso: more than %d directories; path tables cannot number them", maxDirs)
		}
	}
	if p.joliet() {
		p.jdirs = []*node{b.root}
		for i := 0; i < len(p.jdirs); i++ {
			d := p.jdirs[i]
			d.jPtNum = i + 1
			for _, c := range jolietSorted(d.children) {
				if c.kind == kindDir {
					p.jdirs = append(p.jdirs, c)
				}
			}
		}
	}
	for _, d := range p.dirs {
		p.ptSize += ptRecordLen(len(d.isoName))
	}
	for _, d := range p.jdirs {
		p.jptSize += ptRecordLen(len(d.jName))
	}
	return p, nil
}

func ptRecordLen(n int) uint32 {
	if n == 0 {
		n = 1 // the root's identifier is a single 0x00
	}
	return uint32(8 + n + n%2)
}

// dirExtentSize lays out a directory's records into sectors (a record
// never crosses a sector boundary) and returns the extent size. With
// Rock Ridge it also allocates the continuation areas.
func (p *plan) dirExtentSize(d *node, ce *ceAllocator) uint32 {
	var off uint32
	add := func(l int) {
		if off%sectorSize+uint32(l) > sectorSize {
			off += sectorSize - off%sectorSize
		}
		off += uint32(l)
	}
	for i := 0; i < 2; i++ { // "." and ".."
		su := 0
		if p.rr() {
			dir := d
			if i == 1 && d.parent != nil {
				dir = d.parent
			}
			parts := pack(p.dotEntries(dir, d.parent == nil && i == 0), inlineRoom(1))
			if d.parent == nil && i == 0 {
				for _, s := range areaSizes(parts) {
					d.dotCE = append(d.dotCE, ce.alloc(s))
				}
			}
			su = partLen(parts[0])
			if len(parts) > 1 {
				su += ceLen
			}
		}
		add(recordLen(1, su))
	}
	for _, c := range d.children {
		su := 0
		if p.rr() {
			parts := pack(rrEntries(c), inlineRoom(len(c.isoName)))
			c.ce = c.ce[:0]
			for _, s := range areaSizes(parts) {
				c.ce = append(c.ce, ce.alloc(s))
			}
			su = partLen(parts[0])
			if len(parts) > 1 {
				su += ceLen
			}
		}
		l := recordLen(len(c.isoName), su)
		for k := extentCount(c); k > 0; k-- {
			add(l)
		}
	}
	return sectorsFor(int64(off)) * sectorSize
}

func (p *plan) jolietExtentSize(d *node) uint32 {
	var off uint32
	add := func(l int) {
		if off%sectorSize+uint32(l) > sectorSize {
			off += sectorSize - off%sectorSize
		}
		off += uint32(l)
	}
	add(recordLen(1, 0))
	add(recordLen(1, 0))
	for _, c := range d.children {
		for k := extentCount(c); k > 0; k-- {
			add(recordLen(len(c.jName), 0))
		}
	}
	return sectorsFor(int64(off)) * sectorSize
}

// assign gives every structure its sectors; extents must be known.
func (p *plan) assign() error {
	lba := uint32(17)
	if p.joliet() {
		lba++
	}
	lba++ // terminator
	p.lPT = lba
	lba += sectorsFor(int64(p.ptSize))
	p.mPT = lba
	lba += sectorsFor(int64(p.ptSize))
	if p.joliet() {
		p.jlPT = lba
		lba += sectorsFor(int64(p.jptSize))
		p.jmPT = lba
		lba += sectorsFor(int64(p.jptSize))
	}
	for _, d := range p.dirs {
		var ce ceAllocator
		d.lba = lba
		d.size = p.dirExtentSize(d, &ce)
		lba += d.size / sectorSize
		d.ceLBA, d.ceSectors = lba, ce.sectors()
		lba += d.ceSectors
	}
	for _, d := range p.jdirs {
		d.jLBA = lba
		d.jSize = p.jolietExtentSize(d)
		lba += d.jSize / sectorSize
	}
	p.dataLBA = lba
	// Empty files point at the first data sector with length 0, a valid
	// location inside the volume (some readers reject block 0).
	p.emptyLBA = lba
	total := int64(lba)
	for _, e := range p.extents {
		if total > int64(^uint32(0)) {
			return fmt.Errorf("iso: image larger than 8 TiB; ISO 9660 addresses only 2^32 sectors")
		}
		e.lba = uint32(total)
		total += int64(sectorsFor(e.size))
	}
	total += padSectors
	if total > int64(^uint32(0)) {
		return fmt.Errorf("iso: image larger than 8 TiB; ISO 9660 addresses only 2^32 sectors")
	}
	p.total = uint32(total)
	return nil
}

func putRecDate(b []byte, t time.Time) {
	t = t.UTC()
	b[0] = byte(t.Year() - 1900)
	b[1] = byte(t.Month())
	b[2] = byte(t.Day())
	b[3] = byte(t.Hour())
	b[4] = byte(t.Minute())
	b[5] = byte(t.Second())
	b[6] = 0 // GMT offset
}

func putVolDate(b []byte, t time.Time) {
	if t.IsZero() {
		copy(b, "0000000000000000")
		b[16] = 0
		return
	}
	t = t.UTC()
	copy(b, fmt.Sprintf("%04d%02d%02d%02d%02d%02d00", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
	b[16] = 0
}

// dirRecord appends one directory record.
func dirRecord(buf, ident []byte, lba, size uint32, flags byte, t time.Time, su []byte) []byte {
	l := recordLen(len(ident), len(su))
	r := make([]byte, l)
	r[0] = byte(l)
	bothEndian32(r[2:], lba)
	bothEndian32(r[10:], size)
	putRecDate(r[18:], t)
	r[25] = flags
	bothEndian16(r[28:], 1)
	r[32] = byte(len(ident))
	copy(r[33:], ident)
	off := 33 + len(ident)
	if len(ident)%2 == 0 {
		off++
	}
	copy(r[off:], su)
	return append(buf, r...)
}

// Directory record flags (ECMA-119 9.1.6) and volume descriptor types
// (8.1.1).
const (
	flagHidden    = 0x01
	flagDir       = 0x02
	flagNotFinal  = 0x80 // a multi-extent file's record, all but the last
	volPrimary    = 1
	volSupplement = 2
	volTerminator = 255
)

// sectorWriter accumulates records so that none crosses a sector boundary.
type sectorWriter struct{ b []byte }

func (s *sectorWriter) add(rec []byte) {
	if r := len(s.b) % sectorSize; r+len(rec) > sectorSize {
		s.b = append(s.b, make([]byte, sectorSize-r)...)
	}
	s.b = append(s.b, rec...)
}

func (s *sectorWriter) finish(size uint32) []byte {
	if uint32(len(s.b)) > size {
		panic(fmt.Sprintf("iso: directory extent overflow: %d > %d", len(s.b), size))
	}
	return append(s.b, make([]byte, int(size)-len(s.b))...)
}

func fileFlags(n *node) byte {
	if n.kind == kindDir {
		return flagDir
	}
	return 0
}

// childRecords appends the records of one child: several for a
// multi-extent file, all with the same system use.
func (p *plan) childRecords(sw *sectorWriter, c *node, ident []byte, su []byte, joliet bool) {
	switch c.kind {
	case kindDir:
		lba, size := c.lba, c.size
		if joliet {
			lba, size = c.jLBA, c.jSize
		}
		sw.add(dirRecord(nil, ident, lba, size, flagDir, c.ino.mtime, su))
	case kindFile:
		size := c.ino.size
		lba := p.emptyLBA
		if c.ino.data != nil {
			lba = c.ino.data.lba
		}
		for {
			part := min(size, maxExtent)
			flags := byte(0)
			if size > maxExtent {
				flags = flagNotFinal
			}
			sw.add(dirRecord(nil, ident, lba, uint32(part), flags, c.ino.mtime, su))
			size -= part
			lba += uint32(part / sectorSize)
			if size == 0 {
				break
			}
		}
	default: // symlinks have no data
		sw.add(dirRecord(nil, ident, p.emptyLBA, 0, 0, c.ino.mtime, su))
	}
}

// primaryDir serializes one primary directory extent and fills ce with the
// continuation areas of its records.
func (p *plan) primaryDir(d *node, ce []byte) []byte {
	sw := &sectorWriter{b: make([]byte, 0, d.size)}
	for i := 0; i < 2; i++ {
		dir := d
		if i == 1 && d.parent != nil {
			dir = d.parent
		}
		var su []byte
		if p.rr() {
			parts := pack(p.dotEntries(dir, d.parent == nil && i == 0), inlineRoom(1))
			var areas [][]byte
			su, areas = assemble(parts, d.dotCE, d.ceLBA)
			for k, a := range areas {
				pos := d.dotCE[k]
				copy(ce[pos.sector*sectorSize+pos.offset:], a)
			}
		}
		sw.add(dirRecord(nil, []byte{byte(i)}, dir.lba, dir.size, flagDir, dir.ino.mtime, su))
	}
	for _, c := range d.children {
		var su []byte
		if p.rr() {
			parts := pack(rrEntries(c), inlineRoom(len(c.isoName)))
			var areas [][]byte
			su, areas = assemble(parts, c.ce, d.ceLBA)
			for k, a := range areas {
				pos := c.ce[k]
				copy(ce[pos.sector*sectorSize+pos.offset:], a)
			}
		}
		p.childRecords(sw, c, c.isoName, su, false)
	}
	return sw.finish(d.size)
}

func (p *plan) jolietDir(d *node) []byte {
	sw := &sectorWriter{b: make([]byte, 0, d.jSize)}
	parent := d
	if d.parent != nil {
		parent = d.parent
	}
	sw.add(dirRecord(nil, []byte{0}, d.jLBA, d.jSize, flagDir, d.ino.mtime, nil))
	sw.add(dirRecord(nil, []byte{1}, parent.jLBA, parent.jSize, flagDir, parent.ino.mtime, nil))
	for _, c := range jolietSorted(d.children) {
		p.childRecords(sw, c, c.jName, nil, true)
	}
	return sw.finish(d.jSize)
}

// pathTable serializes a path table in little (L) or big (M) endian.
func pathTable(dirs []*node, joliet, big bool, size uint32) []byte {
	out := make([]byte, 0, sectorsFor(int64(size))*sectorSize)
	for _, d := range dirs {
		ident, lba, parent := d.isoName, d.lba, 1
		if joliet {
			ident, lba = d.jName, d.jLBA
		}
		if d.parent == nil {
			ident = []byte{0}
		} else if joliet {
			parent = d.parent.jPtNum
		} else {
			parent = d.parent.ptNum
		}
		r := make([]byte, ptRecordLen(len(ident)))
		r[0] = byte(len(ident))
		if big {
			binary.BigEndian.PutUint32(r[2:], lba)
			binary.BigEndian.PutUint16(r[6:], uint16(parent))
		} else {
			binary.LittleEndian.PutUint32(r[2:], lba)
			binary.LittleEndian.PutUint16(r[6:], uint16(parent))
		}
		copy(r[8:], ident)
		out = append(out, r...)
	}
	return append(out, make([]byte, cap(out)-len(out))...)
}

func padField(b []byte, s string) {
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
}

func padFieldUCS2(b []byte, s string) {
	for i := 0; i+1 < len(b); i += 2 {
		b[i], b[i+1] = 0, ' '
	}
	u := ucs2(jolietUnits(s))
	if len(u) > len(b) {
		u = u[:len(b)]
	}
	copy(b, u)
}

// volumeDescriptor builds the PVD (joliet false) or the Joliet SVD.
func (p *plan) volumeDescriptor(joliet bool) []byte {
	o := &p.b.opts
	d := make([]byte, sectorSize)
	d[0] = volPrimary
	copy(d[1:6], "CD001")
	d[6] = 1
	field := padField
	root, ptSize, lPT, mPT := p.b.root, p.ptSize, p.lPT, p.mPT
	rootLBA, rootSize := root.lba, root.size
	if joliet {
		d[0] = volSupplement
		field = padFieldUCS2
		copy(d[88:91], "%/E") // UCS-2 level 3
		ptSize, lPT, mPT = p.jptSize, p.jlPT, p.jmPT
		rootLBA, rootSize = root.jLBA, root.jSize
	}
	field(d[8:40], o.SystemID)
	field(d[40:72], o.VolumeID)
	bothEndian32(d[80:], p.total)
	bothEndian16(d[120:], 1)
	bothEndian16(d[124:], 1)
	bothEndian16(d[128:], sectorSize)
	bothEndian32(d[132:], ptSize)
	binary.LittleEndian.PutUint32(d[140:], lPT)
	binary.BigEndian.PutUint32(d[148:], mPT)
	copy(d[156:190], dirRecord(nil, []byte{0}, rootLBA, rootSize, flagDir, root.ino.mtime, nil))
	field(d[190:318], "")
	field(d[318:446], o.PublisherID)
	field(d[446:574], o.PreparerID)
	field(d[574:702], o.ApplicationID)
	field(d[702:739], "")
	field(d[739:776], "")
	field(d[776:813], "")
	putVolDate(d[813:], p.b.epoch)
	putVolDate(d[830:], p.b.epoch)
	putVolDate(d[847:], time.Time{})
	putVolDate(d[864:], p.b.epoch)
	d[881] = 1
	// The application-use area is left as spaces: implantisomd5 only
	// writes into a blank one, and checkisomd5 hashes it as blanks.
	for i := 883; i < 883+512; i++ {
		d[i] = ' '
	}
	return d
}

func terminator() []byte {
	d := make([]byte, sectorSize)
	d[0] = volTerminator
	copy(d[1:6], "CD001")
	d[6] = 1
	return d
}
