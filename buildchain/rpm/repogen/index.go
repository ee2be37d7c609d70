package repogen

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/klauspost/compress/flate"
	"golang.org/x/sys/unix"
)

// An incremental run must know, for every package, whether it changed,
// and for every chunk of packages, whether its compressed member can be
// copied. Reading that back from the documents means decompressing all
// of them, which costs more than everything else an update does. So each
// run also writes an index of what it wrote: the packages (href, pkgid,
// size, time) and, for every part of every document, its content sha256,
// where its member lies in the compressed file, and the SHA-256 state of
// the open-checksum before it (crypto/sha256 states are serializable).
// An update then copies unchanged members without reading them, and
// resumes the open-checksum at the first part that differs, decompressing
// only the unchanged members after it.
//
// The index is written into the new repodata before the swap, and it
// names the sha256 of the repomd.xml written with it; one that does not
// match the repomd.xml in place (another tool wrote the repodata, or a
// run failed half-way) is ignored and the documents are read instead.
// Each document's file is checked against its checksum (the one that
// repomd.xml lists, recorded in the index) before any member is copied out
// of it, so a file changed behind the index's back is caught too.
const indexName = "repogen-index.txt"

// The index is a small text file written and read by hand (encoding/json
// took about a tenth of an update's CPU for 1,000 packages), one record a
// line, fields separated by one space:
//
//	repogen-index 3
//	repomd <sha256 of repomd.xml>
//	doc <type> <sha256 of the compressed file> <number of parts>
//	<content sha256 or -> <offset> <length> <SHA-256 state, base64>   (one line per part)
//	... (primary, filelists, other)
//	packages <count>
//	<pkgid> <size> <time> <href, Go-quoted>                           (one line per package)
//
// A reader accepts exactly this layout and nothing else; anything else
// means no index.
// Version 3: entries of version 2 may hold names whose control characters
// were dropped (see controlError); re-reading the packages refuses them.
const indexVersion = 3

type index struct {
	Version  int
	Repomd   string // sha256 of the repomd.xml written with this index
	Packages []indexPackage
	Docs     map[string]indexDoc
}

type indexPackage struct {
	Href  string
	Pkgid string
	Size  int64
	Time  int64 // the file time written in primary.xml
}

type indexDoc struct {
	Checksum string      // sha256 of the compressed file
	Parts    []indexPart // head, one per chunk, tail
}

type indexPart struct {
	Sum   string // sha256 of the content; empty for an empty part (no member)
	Off   int64  // the member's place in the compressed file
	Len   int64
	State []byte // open-checksum SHA-256 state before this part
}

// encode returns the index file.
func (ix *index) encode() []byte {
	var b bytes.Buffer
	ix.encodeTo(&b)
	return b.Bytes()
}

// encodeTo writes the index file to w through a small buffer.
func (ix *index) encodeTo(w io.Writer) error {
	b := make([]byte, 0, 32<<10)
	var err error
	flush := func() {
		if len(b) > 28<<10 {
			if _, e := w.Write(b); e != nil && err == nil {
				err = e
			}
			b = b[:0]
		}
	}
	b = append(b, "repogen-index "...)
	b = strconv.AppendInt(b, indexVersion, 10)
	b = append(b, "\nrepomd "...)
	b = append(b, ix.Repomd...)
	b = append(b, '\n')
	for _, typ := range docTypes {
		d := ix.Docs[typ]
		b = append(b, "doc "...)
		b = append(b, typ...)
		b = append(b, ' ')
		b = append(b, d.Checksum...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(d.Parts)), 10)
		b = append(b, '\n')
		for _, p := range d.Parts {
			if p.Sum == "" {
				b = append(b, '-')
			} else {
				b = append(b, p.Sum...)
			}
			b = append(b, ' ')
			b = strconv.AppendInt(b, p.Off, 10)
			b = append(b, ' ')
			b = strconv.AppendInt(b, p.Len, 10)
			b = append(b, ' ')
			b = base64.StdEncoding.AppendEncode(b, p.State)
			b = append(b, '\n')
			flush()
		}
	}
	b = append(b, "packages "...)
	b = strconv.AppendInt(b, int64(len(ix.Packages)), 10)
	b = append(b, '\n')
	for _, p := range ix.Packages {
		b = append(b, p.Pkgid...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Size, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Time, 10)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, p.Href)
		b = append(b, '\n')
		flush()
	}
	if _, e := w.Write(b); e != nil && err == nil {
		err = e
	}
	return err
}

// indexLines reads an index file line by line.
type indexLines struct {
	data []byte
	bad  bool
}

// fields returns the next line split in exactly n (at most 4) fields, or
// marks the reader bad. The fields come back in an array, not a slice, so
// that nothing is allocated per line.
func (r *indexLines) fields(n int) (f [4][]byte) {
	if r.bad {
		return f
	}
	line, rest, ok := bytes.Cut(r.data, []byte{'\n'})
	if !ok {
		r.bad = true
		return f
	}
	r.data = rest
	for i := 0; i < n-1; i++ {
		var ok bool
		if f[i], line, ok = bytes.Cut(line, []byte{' '}); !ok {
			r.bad = true
			return f
		}
	}
	f[n-1] = line
	return f
}

// int parses a non-negative decimal.
func (r *indexLines) int(b []byte) int64 {
	v := r.signed(b)
	if v < 0 {
		r.bad = true
	}
	return v
}

func (r *indexLines) signed(b []byte) int64 {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		r.bad = true
	}
	return v
}

// sum checks that b is a lower-case hex sha256 and returns it.
func (r *indexLines) sum(b []byte) string {
	if len(b) != 64 {
		r.bad = true
		return ""
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			r.bad = true
			return ""
		}
	}
	return string(b)
}

// decodeIndex parses an index file; ok is false for anything encode
// would not have written.
func decodeIndex(data []byte) (ix index, ok bool) {
	r := &indexLines{data: data}
	if f := r.fields(2); r.bad || string(f[0]) != "repogen-index" || string(f[1]) != strconv.Itoa(indexVersion) {
		return ix, false
	}
	ix.Version = indexVersion
	if f := r.fields(2); r.bad || string(f[0]) != "repomd" {
		return ix, false
	} else {
		ix.Repomd = r.sum(f[1])
	}
	ix.Docs = make(map[string]indexDoc, len(docTypes))
	for _, typ := range docTypes {
		f := r.fields(4)
		if r.bad || string(f[0]) != "doc" || string(f[1]) != typ {
			return ix, false
		}
		d := indexDoc{Checksum: r.sum(f[2])}
		n := r.int(f[3])
		if r.bad || n > int64(len(r.data)/8) {
			return ix, false
		}
		d.Parts = make([]indexPart, n)
		for i := range d.Parts {
			f := r.fields(4)
			if r.bad {
				return ix, false
			}
			p := &d.Parts[i]
			if string(f[0]) != "-" {
				p.Sum = r.sum(f[0])
			}
			p.Off, p.Len = r.int(f[1]), r.int(f[2])
			st, err := base64.StdEncoding.AppendDecode(nil, f[3])
			if err != nil {
				return ix, false
			}
			p.State = st
		}
		ix.Docs[typ] = d
	}
	f := r.fields(2)
	if r.bad || string(f[0]) != "packages" {
		return ix, false
	}
	n := r.int(f[1])
	if r.bad || n > int64(len(r.data)/8) {
		return ix, false
	}
	ix.Packages = make([]indexPackage, n)
	for i := range ix.Packages {
		f := r.fields(4)
		if r.bad {
			return ix, false
		}
		p := &ix.Packages[i]
		p.Pkgid, p.Size, p.Time = r.sum(f[0]), r.int(f[1]), r.signed(f[2]) // a file time may precede 1970
		href, err := strconv.Unquote(string(f[3]))
		if err != nil || len(f[3]) == 0 || f[3][0] != '"' {
			return ix, false
		}
		p.Href = href
	}
	return ix, !r.bad && len(r.data) == 0
}

// oldIndex is a validated index with the compressed documents it
// describes, read into memory (they are small: the members are copied
// out of them).
type oldIndex struct {
	index
	raw    map[string][]byte // compressed documents by type, mapped read-only
	bounds []int             // chunk ends over Packages, as chunkBounds
	maps   [][]byte          // what close unmaps
}

// close unmaps the documents; nothing read from raw may be used after.
func (ix *oldIndex) close() {
	for _, m := range ix.maps {
		unix.Munmap(m)
	}
	ix.maps, ix.raw = nil, nil
}

// mapFile maps a file read-only. The old documents are mapped rather than
// read: their pages are in the page cache already, where reading them
// would copy them into fresh memory, which a new process pays for page by
// page. Files in repodata are never changed in place (each run writes new
// ones and swaps the directory), so the mapping stays valid.
func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 || fi.Size() > 1<<31 || !fi.Mode().IsRegular() {
		return nil, errors.New("not a mappable document")
	}
	return unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
}

var docTypes = []string{"primary", "filelists", "other"}

// readIndex returns the index of dir's repodata when it belongs to the
// repomd.xml in place and agrees with the documents, else nil.
func readIndex(dir string) *oldIndex {
	rd := filepath.Join(dir, "repodata")
	mdBytes, err := os.ReadFile(filepath.Join(rd, "repomd.xml"))
	if err != nil {
		return nil
	}
	data, err := mapFile(filepath.Join(rd, indexName))
	if err != nil {
		return nil
	}
	defer unix.Munmap(data) // decodeIndex copies what it keeps
	mdSum := sha256.Sum256(mdBytes)
	var ix oldIndex
	var ok bool
	if ix.index, ok = decodeIndex(data); !ok || ix.Repomd != hex.EncodeToString(mdSum[:]) {
		return nil
	}
	hrefs := make([]string, len(ix.Packages))
	for i, p := range ix.Packages {
		if i > 0 && p.Href <= hrefs[i-1] {
			return nil // listRPMs order, no duplicates
		}
		hrefs[i] = p.Href
	}
	ix.bounds = chunkBounds(hrefs)
	ix.raw = map[string][]byte{}
	ok = false
	defer func() {
		if !ok {
			ix.close()
		}
	}()
	for _, typ := range docTypes {
		// The index belongs to this repomd.xml, which the same run wrote
		// listing each document as repodata/<checksum>-<type>.xml.gz
		// with that checksum: no need to parse it again.
		doc := ix.Docs[typ]
		if len(doc.Parts) != len(ix.bounds)+2 {
			return nil
		}
		raw, err := mapFile(filepath.Join(rd, doc.Checksum+"-"+typ+".xml.gz"))
		if err != nil {
			return nil
		}
		ix.maps = append(ix.maps, raw)
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != doc.Checksum {
			return nil
		}
		var off int64
		minMember := int64(len(memberHeader([32]byte{})) + 8)
		for _, p := range doc.Parts {
			if p.Off != off || p.Len < 0 || p.Len > int64(len(raw))-off || (p.Len == 0) != (p.Sum == "") || p.Len > 0 && p.Len < minMember {
				return nil
			}
			off += p.Len
		}
		if off != int64(len(raw)) {
			return nil
		}
		ix.raw[typ] = raw
	}
	ok = true
	return &ix
}

// member returns the compressed member of part i of document typ.
func (ix *oldIndex) member(typ string, i int) []byte {
	p := ix.Docs[typ].Parts[i]
	return ix.raw[typ][p.Off : p.Off+p.Len : p.Off+p.Len]
}

// chunkFragments decompresses old chunk c (parts are offset by the head)
// of the three documents and returns each package's fragments, in chunk
// order; ok is false when the members do not hold one fragment per
// package of the chunk.
func (ix *oldIndex) chunkFragments(c int) (prim, files, other [][]byte, ok bool) {
	start := 0
	if c > 0 {
		start = ix.bounds[c-1]
	}
	n := ix.bounds[c] - start
	// The three members are inflated at once: an update waits for them.
	var docs [3][][]byte
	var good [3]bool
	var wg sync.WaitGroup
	for k, typ := range docTypes {
		wg.Go(func() {
			content, err := inflateMember(ix.member(typ, c+1))
			if err == nil {
				docs[k] = fragments(content)
				good[k] = len(docs[k]) == n
			}
		})
	}
	wg.Wait()
	if !good[0] || !good[1] || !good[2] {
		return nil, nil, nil, false
	}
	return docs[0], docs[1], docs[2], true
}

// inflateMember decompresses one member written by compressMember and
// checks its CRC and length.
func inflateMember(m []byte) ([]byte, error) {
	h := len(memberHeader([32]byte{}))
	if len(m) < h+8 {
		return nil, errors.New("short member")
	}
	var out bytes.Buffer
	// Size the buffer from the trailer, but believe it only as far as
	// deflate can expand (1032:1) and never past 64 MiB, so a bad trailer
	// cannot claim gigabytes.
	isize := int64(binary.LittleEndian.Uint32(m[len(m)-4:]))
	out.Grow(int(min(isize, 1032*int64(len(m)), 64<<20)) + bytes.MinRead)
	if _, err := out.ReadFrom(flate.NewReader(bytes.NewReader(m[h : len(m)-8]))); err != nil {
		return nil, err
	}
	t := m[len(m)-8:]
	if crc32.ChecksumIEEE(out.Bytes()) != binary.LittleEndian.Uint32(t) || uint32(out.Len()) != binary.LittleEndian.Uint32(t[4:]) {
		return nil, errors.New("member CRC or size mismatch")
	}
	return out.Bytes(), nil
}

// memberHasher feeds members' uncompressed content to a hash without
// keeping it, for the open-checksum of a document whose members are
// copied. It reuses one decompressor and buffer across members.
type memberHasher struct {
	r   *bytes.Reader
	fr  io.ReadCloser
	buf []byte
}

func (mh *memberHasher) hash(h hash.Hash, m []byte) error {
	hl := len(memberHeader([32]byte{}))
	if len(m) < hl+8 {
		return errors.New("short member")
	}
	if mh.fr == nil {
		mh.r = bytes.NewReader(m[hl : len(m)-8])
		mh.fr = flate.NewReader(mh.r)
		mh.buf = make([]byte, 64<<10)
	} else {
		mh.r.Reset(m[hl : len(m)-8])
		if err := mh.fr.(flate.Resetter).Reset(mh.r, nil); err != nil {
			return err
		}
	}
	_, err := io.CopyBuffer(h, mh.fr, mh.buf)
	return err
}

// marshalState serializes h (a crypto/sha256 digest).
func marshalState(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("sha256 state cannot be marshaled: " + err.Error()) // crypto/sha256 always can
	}
	return b
}
