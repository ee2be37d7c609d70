package repogen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/klauspost/compress/flate"

	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmfile"
)

// A run's cost is dominated by SHA-256 of the packages, and after that by
// memory: every page a fresh process touches for the first time is a page
// fault, and a run that allocates each package's headers, fragments and
// chunk buffers anew touches tens of MiB. So each worker owns its buffers
// and reuses them from package to package: a read buffer, a scratch
// buffer for XML, a compressor with its output buffer, and an arena that
// holds the fragments and members the run keeps until the documents are
// written.
type worker struct {
	buf   []byte // file reads; the first read usually holds both headers
	reads int    // packages read
	xml   []byte // one fragment being written
	arena []byte // what outlives a package: fragments, members
	zbuf  bytes.Buffer
	fw    *flate.Writer
}

// readBufSize is the size of a worker's reads. 256 KiB holds the headers
// of nearly every package and stays in the L2 cache between the copy out
// of the page cache and the hash that reads it back. A worker's first
// package is read with a quarter of that: an update often reads just one,
// and every page of a buffer is a fault in a new process.
const readBufSize = 256 << 10

// arenaSlab is the size of each block of a worker's arena.
const arenaSlab = 256 << 10

// keep copies b into the worker's arena and returns the copy.
func (w *worker) keep(b []byte) []byte {
	if cap(w.arena)-len(w.arena) < len(b) {
		w.arena = make([]byte, 0, max(arenaSlab, len(b)))
	}
	n := len(w.arena)
	w.arena = append(w.arena, b...)
	return w.arena[n:len(w.arena):len(w.arena)]
}

// fragments renders p's three fragments and keeps them in the arena.
func (w *worker) fragments(p *repomd.Package) (primary, files, other []byte) {
	w.xml = AppendPrimary(w.xml[:0], p)
	primary = w.keep(w.xml)
	w.xml = AppendFilelists(w.xml[:0], p)
	files = w.keep(w.xml)
	w.xml = AppendOther(w.xml[:0], p)
	other = w.keep(w.xml)
	return primary, files, other
}

// readPackage reads an RPM file's headers and sha256 in one pass and
// returns its repodata entry without Location or TimeFile, and the file's
// modification time (seconds).
func (w *worker) readPackage(path string) (*repomd.Package, int64, error) {
	switch w.reads++; w.reads {
	case 1:
		w.buf = make([]byte, readBufSize/4)
	case 2:
		w.buf = make([]byte, readBufSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	h := sha256.New()
	buf := w.buf
	// Read a first chunk that usually holds both headers and parse them
	// where they lie; only when they go past it (or are malformed, for
	// its error) does the streaming reader take over.
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, 0, err
	}
	h.Write(buf[:n])
	rp := parseHeaders(buf[:n])
	if rp == nil {
		// The parser copies what it keeps, so buf is free again afterwards.
		if rp, err = rpmfile.Read(io.MultiReader(bytes.NewReader(buf[:n]), hashReader{f, h})); err != nil {
			return nil, 0, err
		}
	}
	// The headers may lie in buf: take what the entry needs (FromHeader
	// copies every string) before buf is reused for the rest.
	p, err := FromHeader(rp)
	if err != nil {
		return nil, 0, err
	}
	m, err := io.CopyBuffer(h, hashSkip{f}, buf)
	if err != nil {
		return nil, 0, err
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != size || m < 0 {
		return nil, 0, fmt.Errorf("file changed size while being read")
	}
	p.ChecksumType = "sha256"
	var sum [sha256.Size]byte
	p.Checksum = hex.EncodeToString(h.Sum(sum[:0]))
	p.SizePackage = size
	return p, fi.ModTime().Unix(), nil
}

// RPM lead and header layout, as rpmfile reads them.
var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

const (
	leadSize  = 96
	maxHeader = 256 << 20 // rpmfile's bound
)

// parseHeaders parses the lead and both headers from b, the start of a
// file, without copying them: the headers' stores point into b. It
// returns nil when the headers do not lie wholly in b or anything is
// unexpected; rpmfile.Read then reads the file (and words the error).
// Where both succeed they agree (FuzzParseHeaders).
func parseHeaders(b []byte) *rpmfile.Package {
	if len(b) < leadSize || !bytes.Equal(b[:4], leadMagic) {
		return nil
	}
	sig, end := headerAt(b, leadSize)
	if sig == nil {
		return nil
	}
	start := end + (8-end%8)%8 // the signature header is padded to 8 bytes
	h, end := headerAt(b, start)
	if h == nil {
		return nil
	}
	return &rpmfile.Package{Signature: sig, Header: h, HeaderStart: int64(start), HeaderEnd: int64(end)}
}

// headerAt parses the header structure at b[off:] and returns it with the
// offset of its end.
func headerAt(b []byte, off int) (*rpmfile.Header, int) {
	if off > len(b) || len(b)-off < 16 || !bytes.Equal(b[off:off+4], headerMagic) {
		return nil, 0
	}
	n := uint64(binary.BigEndian.Uint32(b[off+8:]))
	size := uint64(binary.BigEndian.Uint32(b[off+12:]))
	total := 16 + 16*n + size
	if n > maxHeader/16 || total > maxHeader || total > uint64(len(b)-off) {
		return nil, 0
	}
	end := off + int(total)
	h, err := rpmfile.ParseHeader(b[off:end:end])
	if err != nil {
		return nil, 0
	}
	return h, end
}

// compressChunk returns the three parts of a chunk of fresh entries, each
// compressed into one gzip member kept in the arena. The content is not
// copied: the part lists the fragments, which writeDoc hashes in order.
func (w *worker) compressChunk(chunk []entry) [3]part {
	var parts [3]part
	if w.fw == nil {
		w.fw, _ = flate.NewWriter(nil, flate.DefaultCompression)
	}
	for k := range parts {
		p := &parts[k]
		p.frags = make([][]byte, len(chunk))
		h := sha256.New()
		crc := uint32(0)
		for i := range chunk {
			f := chunk[i].doc(k)
			p.frags[i] = f
			p.n += len(f)
			h.Write(f)
			crc = crc32.Update(crc, crc32.IEEETable, f)
		}
		if p.n == 0 {
			continue // no member for an empty part
		}
		h.Sum(p.sum[:0])
		w.zbuf.Reset()
		w.zbuf.Write(memberHeader(p.sum))
		w.fw.Reset(&w.zbuf)
		for _, f := range p.frags {
			w.fw.Write(f)
		}
		w.fw.Close()
		var t [8]byte
		binary.LittleEndian.PutUint32(t[:4], crc)
		binary.LittleEndian.PutUint32(t[4:], uint32(p.n))
		w.zbuf.Write(t[:])
		p.member = w.keep(w.zbuf.Bytes())
	}
	return parts
}
