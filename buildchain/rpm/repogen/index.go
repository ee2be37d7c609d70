package repogen

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/flate"

	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
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
// Each document's file is checked against its repomd checksum before any
// member is copied out of it, so a file changed behind the index's back is
// caught too.
const indexName = "repogen-index.json"

const indexVersion = 1

type index struct {
	Version  int                 `json:"version"`
	Repomd   string              `json:"repomd"` // sha256 of the repomd.xml written with this index
	Packages []indexPackage      `json:"packages"`
	Docs     map[string]indexDoc `json:"docs"`
}

type indexPackage struct {
	Href  string `json:"href"`
	Pkgid string `json:"pkgid"`
	Size  int64  `json:"size"`
	Time  int64  `json:"time"` // the file time written in primary.xml
}

type indexDoc struct {
	Checksum string      `json:"checksum"` // sha256 of the compressed file
	Parts    []indexPart `json:"parts"`    // head, one per chunk, tail
}

type indexPart struct {
	Sum   string `json:"sum"` // sha256 of the content; empty for an empty part (no member)
	Off   int64  `json:"off"` // the member's place in the compressed file
	Len   int64  `json:"len"`
	State []byte `json:"state"` // open-checksum SHA-256 state before this part
}

// oldIndex is a validated index with the compressed documents it
// describes, read into memory (they are small: the members are copied
// out of them).
type oldIndex struct {
	index
	raw    map[string][]byte // compressed documents by type
	bounds []int             // chunk ends over Packages, as chunkBounds
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
	data, err := os.ReadFile(filepath.Join(rd, indexName))
	if err != nil {
		return nil
	}
	mdSum := sha256.Sum256(mdBytes)
	var ix oldIndex
	if json.Unmarshal(data, &ix.index) != nil || ix.Version != indexVersion || ix.Repomd != hex.EncodeToString(mdSum[:]) {
		return nil
	}
	md, err := repomd.ParseRepomd(bytes.NewReader(mdBytes))
	if err != nil {
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
	for _, typ := range docTypes {
		d, doc := md.Data(typ), ix.Docs[typ]
		if d == nil || d.Checksum.Type != "sha256" || d.Checksum.Value != doc.Checksum || len(doc.Parts) != len(ix.bounds)+2 {
			return nil
		}
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(d.Location)))
		if err != nil {
			return nil
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != d.Checksum.Value {
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
	var docs [3][][]byte
	for k, typ := range docTypes {
		content, err := inflateMember(ix.member(typ, c+1))
		if err != nil {
			return nil, nil, nil, false
		}
		docs[k] = fragments(content)
		if len(docs[k]) != n {
			return nil, nil, nil, false
		}
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
