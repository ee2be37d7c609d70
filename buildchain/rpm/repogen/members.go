package repogen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Documents are written as a series of gzip members (RFC 1952 allows a
// file to be several members end to end; zlib's gzread, libsolv, Python
// and Go read them as one stream). Each member holds the XML of a chunk
// of packages and carries, in an FEXTRA subfield "MK", the sha256 of its
// uncompressed content. An incremental run then copies the compressed
// bytes of every chunk whose content did not change instead of
// compressing the whole document again; only the chunks that hold a
// changed package are compressed.
//
// Chunk boundaries depend on each package's location only (a hash of the
// href), so adding or removing one package changes one chunk, not every
// chunk after it.

const (
	chunkMask = 31  // a boundary after ~1 package in 32
	chunkMax  = 256 // and at least every 256 packages
)

// chunkBounds returns the end index (exclusive) of each chunk of hrefs.
func chunkBounds(hrefs []string) []int {
	var ends []int
	n := 0
	for i, h := range hrefs {
		n++
		// FNV-1a, 32 bits (hash/fnv's New32a, without an allocation each).
		f := uint32(2166136261)
		for k := 0; k < len(h); k++ {
			f ^= uint32(h[k])
			f *= 16777619
		}
		if f&chunkMask == 0 || n == chunkMax {
			ends = append(ends, i+1)
			n = 0
		}
	}
	if n > 0 || len(hrefs) == 0 {
		ends = append(ends, len(hrefs))
	}
	return ends
}

var flatePool = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.DefaultCompression)
	return w
}}

// memberHeader is a gzip header with FEXTRA: mtime 0, no name, OS unknown.
func memberHeader(sum [32]byte) []byte {
	h := []byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255}
	h = binary.LittleEndian.AppendUint16(h, 4+32)
	h = append(h, 'M', 'K')
	h = binary.LittleEndian.AppendUint16(h, 32)
	return append(h, sum[:]...)
}

// compressMember returns the gzip member of content.
func compressMember(content []byte, sum [32]byte) []byte {
	var b bytes.Buffer
	b.Write(memberHeader(sum))
	w := flatePool.Get().(*flate.Writer)
	w.Reset(&b)
	w.Write(content)
	w.Close()
	flatePool.Put(w)
	var t [8]byte
	binary.LittleEndian.PutUint32(t[:4], crc32.ChecksumIEEE(content))
	binary.LittleEndian.PutUint32(t[4:], uint32(len(content)))
	b.Write(t[:])
	return b.Bytes()
}

// splitMembers decompresses a document written by writeDoc, returning its
// content and the compressed bytes of each member by content sha256. A
// document in any other layout (one member, as createrepo_c writes)
// returns ok=false, and the caller decompresses it the ordinary way.
func splitMembers(raw []byte, sizeHint int64) (content []byte, byHash map[[32]byte][]byte, ok bool) {
	byHash = map[[32]byte][]byte{}
	var out bytes.Buffer
	if sizeHint > 0 && sizeHint < 1<<31 {
		out.Grow(int(sizeHint) + 64<<10)
	}
	r := bytes.NewReader(raw)
	for r.Len() > 0 {
		start := len(raw) - r.Len()
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, nil, false
		}
		if hdr[0] != 0x1f || hdr[1] != 0x8b || hdr[2] != 8 || hdr[3] != 4 ||
			binary.LittleEndian.Uint16(hdr[10:]) != 36 || hdr[12] != 'M' || hdr[13] != 'K' || binary.LittleEndian.Uint16(hdr[14:]) != 32 {
			return nil, nil, false
		}
		var sum [32]byte
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return nil, nil, false
		}
		before := out.Len()
		fr := flate.NewReader(r) // r is an io.ByteReader: no read-ahead
		if _, err := io.CopyBuffer(&out, fr, make([]byte, 32<<10)); err != nil {
			return nil, nil, false
		}
		var t [8]byte
		if _, err := io.ReadFull(r, t[:]); err != nil {
			return nil, nil, false
		}
		part := out.Bytes()[before:]
		if crc32.ChecksumIEEE(part) != binary.LittleEndian.Uint32(t[:4]) || uint32(len(part)) != binary.LittleEndian.Uint32(t[4:]) || sha256.Sum256(part) != sum {
			return nil, nil, false
		}
		end := len(raw) - r.Len()
		byHash[sum] = raw[start:end:end]
	}
	return out.Bytes(), byHash, true
}
