// Package rpmfile reads the lead, signature header and main header of an
// RPM package file, and keeps the byte ranges that signatures cover.
//
// It is written here rather than taken from a general RPM library because
// the repodata writer needs exactly two things those libraries hide or make
// slow: the offsets of the main header (createrepo's rpm:header-range, and
// the bytes an RSAHEADER signature covers) and a single streaming pass that
// hashes the whole file while the header is parsed.
package rpmfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Main header tags used by the buildchain.
const (
	TagHeaderImmutable = 63
	TagName            = 1000
	TagVersion         = 1001
	TagRelease         = 1002
	TagEpoch           = 1003
	TagSummary         = 1004
	TagDescription     = 1005
	TagBuildTime       = 1006
	TagBuildHost       = 1007
	TagSize            = 1009
	TagVendor          = 1011
	TagLicense         = 1014
	TagPackager        = 1015
	TagGroup           = 1016
	TagURL             = 1020
	TagArch            = 1022
	TagOldFilenames    = 1027
	TagFileSizes       = 1028
	TagFileModes       = 1030
	TagFileFlags       = 1037
	TagSourceRPM       = 1044
	TagArchiveSize     = 1046
	TagProvideName     = 1047
	TagRequireFlags    = 1048
	TagRequireName     = 1049
	TagRequireVersion  = 1050
	TagConflictFlags   = 1053
	TagConflictName    = 1054
	TagConflictVersion = 1055
	TagChangelogTime   = 1080
	TagChangelogName   = 1081
	TagChangelogText   = 1082
	TagObsoleteName    = 1090
	TagSourcePackage   = 1106
	TagProvideFlags    = 1112
	TagProvideVersion  = 1113
	TagObsoleteFlags   = 1114
	TagObsoleteVersion = 1115
	TagDirIndexes      = 1116
	TagBaseNames       = 1117
	TagDirNames        = 1118
	TagLongFileSizes   = 5008
	TagLongSize        = 5009
	TagRecommendName   = 5046
	TagRecommendVer    = 5047
	TagRecommendFlags  = 5048
	TagSuggestName     = 5049
	TagSuggestVersion  = 5050
	TagSuggestFlags    = 5051
	TagSupplementName  = 5052
	TagSupplementVer   = 5053
	TagSupplementFlags = 5054
	TagEnhanceName     = 5055
	TagEnhanceVersion  = 5056
	TagEnhanceFlags    = 5057
)

// Signature header tags (their own numbering space).
const (
	SigDSA         = 267  // DSA over the main header only
	SigRSA         = 268  // RSA (or any OpenPGP) over the main header only: EL8+
	SigSHA1        = 269  // hex SHA-1 of the main header
	SigSHA256      = 273  // hex SHA-256 of the main header
	SigSize        = 1000 // size of main header + payload
	SigPGP         = 1002 // RSA over main header + payload: EL7
	SigMD5         = 1004 // MD5 of main header + payload
	SigGPG         = 1005 // DSA over main header + payload: EL7
	SigPayloadSize = 1007
)

// Header entry types.
const (
	typeNull = iota
	typeChar
	typeInt8
	typeInt16
	typeInt32
	typeInt64
	typeString
	typeBin
	typeStringArray
	typeI18NString
)

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

const (
	leadSize = 96
	// maxHeader bounds what a corrupt file can make us allocate; rpm
	// itself refuses headers above 256 MiB.
	maxHeader = 256 << 20
)

type entry struct {
	typ, offset, count uint32
}

// Header is one parsed header structure (signature or main).
type Header struct {
	entries map[uint32]entry
	store   []byte
	// Raw is the whole header blob as it is in the file: the 16-byte
	// intro, the index and the store.
	Raw []byte
}

// Package is what Read returns.
type Package struct {
	Signature *Header
	Header    *Header
	// HeaderStart and HeaderEnd are the file offsets of the main header;
	// the payload starts at HeaderEnd.
	HeaderStart, HeaderEnd int64
}

// Read reads the lead and both headers from r and leaves r positioned at
// the start of the payload.
func Read(r io.Reader) (*Package, error) {
	var lead [leadSize]byte
	if _, err := io.ReadFull(r, lead[:]); err != nil {
		return nil, fmt.Errorf("reading RPM lead: %w", noEOF(err))
	}
	if !bytes.Equal(lead[:4], leadMagic) {
		return nil, errors.New("not an RPM file (bad lead magic)")
	}
	sig, err := readHeader(r)
	if err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	off := int64(leadSize) + int64(len(sig.Raw))
	// The signature header is padded to an 8-byte boundary.
	if pad := (8 - off%8) % 8; pad > 0 {
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return nil, fmt.Errorf("signature header padding: %w", noEOF(err))
		}
		off += pad
	}
	h, err := readHeader(r)
	if err != nil {
		return nil, fmt.Errorf("main header: %w", err)
	}
	return &Package{Signature: sig, Header: h, HeaderStart: off, HeaderEnd: off + int64(len(h.Raw))}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func readHeader(r io.Reader) (*Header, error) {
	var intro [16]byte
	if _, err := io.ReadFull(r, intro[:]); err != nil {
		return nil, noEOF(err)
	}
	if !bytes.Equal(intro[:4], headerMagic) {
		return nil, errors.New("bad header magic")
	}
	n := binary.BigEndian.Uint32(intro[8:])
	size := binary.BigEndian.Uint32(intro[12:])
	total := 16 + 16*uint64(n) + uint64(size)
	if n > maxHeader/16 || total > maxHeader {
		return nil, fmt.Errorf("header of %d entries and %d bytes is too large", n, size)
	}
	// Grow with what actually arrives rather than trusting the size a
	// corrupt file claims: a truncated file must not cost 256 MiB.
	var buf bytes.Buffer
	buf.Grow(int(min(total, 1<<20)))
	buf.Write(intro[:])
	if n, err := io.Copy(&buf, io.LimitReader(r, int64(total)-16)); err != nil {
		return nil, err
	} else if uint64(n) != total-16 {
		return nil, io.ErrUnexpectedEOF
	}
	return ParseHeader(buf.Bytes())
}

// ParseHeader parses a header blob that starts with the header magic.
func ParseHeader(raw []byte) (*Header, error) {
	if len(raw) < 16 || !bytes.Equal(raw[:4], headerMagic) {
		return nil, errors.New("bad header magic")
	}
	n := uint64(binary.BigEndian.Uint32(raw[8:]))
	size := uint64(binary.BigEndian.Uint32(raw[12:]))
	if 16+16*n+size != uint64(len(raw)) {
		return nil, fmt.Errorf("header claims %d entries and %d bytes but has %d bytes", n, size, len(raw))
	}
	h := &Header{entries: make(map[uint32]entry, n), store: raw[16+16*n:], Raw: raw}
	for i := uint64(0); i < n; i++ {
		b := raw[16+16*i:]
		e := entry{
			typ:    binary.BigEndian.Uint32(b[4:]),
			offset: binary.BigEndian.Uint32(b[8:]),
			count:  binary.BigEndian.Uint32(b[12:]),
		}
		tag := binary.BigEndian.Uint32(b)
		if e.typ > typeI18NString {
			return nil, fmt.Errorf("tag %d has unknown type %d", tag, e.typ)
		}
		if uint64(e.offset) > size {
			return nil, fmt.Errorf("tag %d points past the header store", tag)
		}
		h.entries[tag] = e
	}
	return h, nil
}

// Has reports whether tag is present.
func (h *Header) Has(tag uint32) bool { _, ok := h.entries[tag]; return ok }

// Strings returns a string, string array or i18n string tag. For i18n
// strings only the first (C locale) value is meaningful; all are returned.
func (h *Header) Strings(tag uint32) ([]string, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	if e.typ != typeString && e.typ != typeStringArray && e.typ != typeI18NString {
		return nil, fmt.Errorf("tag %d: want strings, have type %d", tag, e.typ)
	}
	if e.typ == typeString {
		e.count = 1
	}
	if uint64(e.count) > uint64(len(h.store)) {
		return nil, fmt.Errorf("tag %d: count %d exceeds the store", tag, e.count)
	}
	out := make([]string, 0, e.count)
	d := h.store[e.offset:]
	for i := uint32(0); i < e.count; i++ {
		j := bytes.IndexByte(d, 0)
		if j < 0 {
			return nil, fmt.Errorf("tag %d: unterminated string", tag)
		}
		out = append(out, string(d[:j]))
		d = d[j+1:]
	}
	return out, nil
}

// String returns the first value of a string tag, or "" when absent.
func (h *Header) String(tag uint32) string {
	s, err := h.Strings(tag)
	if err != nil || len(s) == 0 {
		return ""
	}
	return s[0]
}

// Ints returns an integer tag of any width as int64s.
func (h *Header) Ints(tag uint32) ([]int64, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	var w uint64
	switch e.typ {
	case typeChar, typeInt8:
		w = 1
	case typeInt16:
		w = 2
	case typeInt32:
		w = 4
	case typeInt64:
		w = 8
	default:
		return nil, fmt.Errorf("tag %d: want integers, have type %d", tag, e.typ)
	}
	if uint64(e.offset)+w*uint64(e.count) > uint64(len(h.store)) {
		return nil, fmt.Errorf("tag %d: %d values run past the header store", tag, e.count)
	}
	d := h.store[e.offset:]
	out := make([]int64, e.count)
	for i := range out {
		switch w {
		case 1:
			out[i] = int64(d[i])
		case 2:
			out[i] = int64(binary.BigEndian.Uint16(d[2*i:]))
		case 4:
			out[i] = int64(binary.BigEndian.Uint32(d[4*i:]))
		case 8:
			out[i] = int64(binary.BigEndian.Uint64(d[8*i:]))
		}
	}
	return out, nil
}

// Int returns the first value of an integer tag and whether it was present.
func (h *Header) Int(tag uint32) (int64, bool) {
	v, err := h.Ints(tag)
	if err != nil || len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// Bytes returns a binary tag.
func (h *Header) Bytes(tag uint32) ([]byte, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	if e.typ != typeBin {
		return nil, fmt.Errorf("tag %d: want binary, have type %d", tag, e.typ)
	}
	if uint64(e.offset)+uint64(e.count) > uint64(len(h.store)) {
		return nil, fmt.Errorf("tag %d: %d bytes run past the header store", tag, e.count)
	}
	return h.store[e.offset : e.offset+e.count], nil
}

// ReadFile reads only the headers of an RPM file through a small buffer.
func ReadFile(r io.Reader) (*Package, error) {
	return Read(bufio.NewReaderSize(r, 64<<10))
}
