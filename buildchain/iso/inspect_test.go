package iso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// A small reader of what the writer produces, used to check structure that
// external readers do not show (serial numbers, continuation chains). It
// parses untrusted bytes, so it is fuzzed.

type rawRecord struct {
	ident []byte
	lba   uint32
	size  uint32
	flags byte
	su    []byte
}

// parseDirRecords decodes the records of a directory extent.
func parseDirRecords(b []byte) ([]rawRecord, error) {
	var out []rawRecord
	for off := 0; off < len(b); {
		l := int(b[off])
		if l == 0 { // rest of the sector is padding
			off = (off/sectorSize + 1) * sectorSize
			continue
		}
		if l < 34 || off+l > len(b) || off/sectorSize != (off+l-1)/sectorSize {
			return nil, fmt.Errorf("record at %d: bad length %d", off, l)
		}
		r := b[off : off+l]
		n := int(r[32])
		if 33+n > l {
			return nil, fmt.Errorf("record at %d: identifier length %d overflows record", off, n)
		}
		if binary.LittleEndian.Uint32(r[2:]) != binary.BigEndian.Uint32(r[6:]) ||
			binary.LittleEndian.Uint32(r[10:]) != binary.BigEndian.Uint32(r[14:]) {
			return nil, fmt.Errorf("record at %d: both-endian fields disagree", off)
		}
		suStart := 33 + n + (1 - n%2)
		if suStart > l {
			suStart = l
		}
		out = append(out, rawRecord{
			ident: r[33 : 33+n],
			lba:   binary.LittleEndian.Uint32(r[2:]),
			size:  binary.LittleEndian.Uint32(r[10:]),
			flags: r[25],
			su:    r[suStart:],
		})
		off += l
	}
	return out, nil
}

// maxCEHops bounds the continuation areas one record may chain, as Linux
// does (RR_MAX_CE_ENTRIES); the writer needs at most a few.
const maxCEHops = 32

// parseSUSP splits system use into entries, following CE continuation
// areas through ceRead. An area must sit inside one sector (Linux rejects
// anything else); loops and runaway chains are errors.
func parseSUSP(su []byte, ceRead func(lba, off, n uint32) ([]byte, error)) ([][]byte, error) {
	var out [][]byte
	for hops := 0; ; hops++ {
		if hops > maxCEHops {
			return nil, errors.New("too many continuation areas")
		}
		var next []uint32
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				return nil, fmt.Errorf("entry %q: bad length %d", su[:2], l)
			}
			e := su[:l]
			su = su[l:]
			switch string(e[:2]) {
			case "CE":
				if l != ceLen {
					return nil, fmt.Errorf("CE entry of length %d", l)
				}
				next = []uint32{binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[12:]), binary.LittleEndian.Uint32(e[20:])}
			case "ST":
				su = nil
			default:
				out = append(out, e)
			}
		}
		if next == nil {
			return out, nil
		}
		if ceRead == nil {
			return nil, errors.New("continuation area but no reader")
		}
		if uint64(next[1])+uint64(next[2]) > sectorSize {
			return nil, fmt.Errorf("continuation area %d+%d crosses a sector", next[1], next[2])
		}
		var err error
		if su, err = ceRead(next[0], next[1], next[2]); err != nil {
			return nil, err
		}
	}
}

// areaReader serves continuation areas out of an image in memory. In an
// image no two records share an area, so all the areas together are at
// most the image's size: the reader refuses to hand out more than that.
// Without that budget, records that all point at the same large area
// (which may point at itself) cost records x hops x area size, which made
// the fuzzer stall for minutes on a 64 KiB input.
func areaReader(img []byte) func(lba, off, n uint32) ([]byte, error) {
	budget := int64(len(img))
	return func(lba, off, n uint32) ([]byte, error) {
		start := int64(lba)*sectorSize + int64(off)
		if start+int64(n) > int64(len(img)) {
			return nil, fmt.Errorf("extent %d+%d beyond image", lba, n)
		}
		if budget -= int64(n); budget < 0 {
			return nil, errors.New("continuation areas overlap: more area bytes than image")
		}
		return img[start : start+int64(n)], nil
	}
}

// rrInfo is the Rock Ridge view of one record.
type rrInfo struct {
	name                          string
	mode, nlink, uid, gid, serial uint32
	target                        string
	hasTF                         bool
}

func decodeRR(entries [][]byte) (rrInfo, error) {
	var ri rrInfo
	var sl []byte
	// A builder, not +=: a record may carry thousands of NM entries, and
	// concatenating strings would be quadratic in the name's length.
	var name strings.Builder
	for _, e := range entries {
		switch string(e[:2]) {
		case "PX":
			// RRIP 1.10 (genisoimage) has no serial number: 36 bytes.
			if len(e) < 36 {
				return ri, fmt.Errorf("PX of length %d", len(e))
			}
			ri.mode = binary.LittleEndian.Uint32(e[4:])
			ri.nlink = binary.LittleEndian.Uint32(e[12:])
			ri.uid = binary.LittleEndian.Uint32(e[20:])
			ri.gid = binary.LittleEndian.Uint32(e[28:])
			if len(e) >= 44 {
				ri.serial = binary.LittleEndian.Uint32(e[36:])
			}
		case "NM":
			if len(e) < 5 {
				return ri, errors.New("short NM")
			}
			name.Write(e[5:])
		case "SL":
			if len(e) < 5 {
				return ri, errors.New("short SL")
			}
			sl = append(sl, e[5:]...)
		case "TF":
			ri.hasTF = true
		}
	}
	ri.name = name.String()
	if sl != nil {
		t, err := decodeSL(sl)
		if err != nil {
			return ri, err
		}
		ri.target = t
	}
	return ri, nil
}

// decodeSL joins SL component records into a target path.
func decodeSL(b []byte) (string, error) {
	var sb strings.Builder
	cont := false
	first := true
	for len(b) > 0 {
		if len(b) < 2 || 2+int(b[1]) > len(b) {
			return "", errors.New("truncated SL component")
		}
		flags, text := b[0], string(b[2:2+int(b[1])])
		b = b[2+int(b[1]):]
		if !cont && !first && !strings.HasSuffix(sb.String(), "/") {
			sb.WriteByte('/')
		}
		switch {
		case flags&slRoot != 0:
			sb.WriteByte('/')
		case flags&slParent != 0:
			sb.WriteString("..")
		case flags&slCurrent != 0:
			sb.WriteString(".")
		default:
			sb.WriteString(text)
		}
		cont = flags&slCont != 0
		first = false
	}
	return sb.String(), nil
}

// isoTree walks the primary tree of an image held in memory, returning
// path -> records (several for multi-extent files).
func isoTree(img []byte) (map[string][]rawRecord, map[string]rrInfo, error) {
	if len(img) < 17*sectorSize || string(img[16*sectorSize+1:16*sectorSize+6]) != "CD001" {
		return nil, nil, errors.New("no primary volume descriptor")
	}
	ceRead := areaReader(img)
	read := func(lba, off, n uint32) ([]byte, error) {
		start := int64(lba)*sectorSize + int64(off)
		if start+int64(n) > int64(len(img)) {
			return nil, fmt.Errorf("extent %d+%d beyond image", lba, n)
		}
		return img[start : start+int64(n)], nil
	}
	root := img[16*sectorSize+156 : 16*sectorSize+190]
	recs := map[string][]rawRecord{}
	infos := map[string]rrInfo{}
	seen := map[uint32]bool{}
	var walk func(p string, lba, size uint32) error
	walk = func(p string, lba, size uint32) error {
		if seen[lba] {
			return fmt.Errorf("directory loop at %s", p)
		}
		seen[lba] = true
		b, err := read(lba, 0, size)
		if err != nil {
			return err
		}
		rs, err := parseDirRecords(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for i, r := range rs {
			if i < 2 {
				continue
			}
			es, err := parseSUSP(r.su, ceRead)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", p, r.ident, err)
			}
			ri, err := decodeRR(es)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", p, r.ident, err)
			}
			name := ri.name
			if name == "" {
				name = string(r.ident)
			}
			cp := p + "/" + name
			recs[cp] = append(recs[cp], r)
			infos[cp] = ri
			if r.flags&flagDir != 0 {
				if err := walk(cp, r.lba, r.size); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := walk("", binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:]))
	return recs, infos, err
}
