package iso

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// isoMD5 computes what implantisomd5 embeds: the MD5 of the image, less
// its last 15 sectors, with the application-use area blank (which it is
// while we write), and "fragment sums" taken at the 32 KiB read
// boundaries implantisomd5 uses.
type isoMD5 struct {
	h        hash.Hash
	off      int64
	limit    int64
	fragSize int64
	prev     int64
	frags    strings.Builder
}

const (
	md5SkipSectors   = 15
	md5FragmentCount = 20
	md5FragmentChars = 60 / md5FragmentCount
	md5ReadSize      = 16 * sectorSize
	appDataOffset    = 16*sectorSize + 883
)

func newISOMD5(totalSectors uint32) *isoMD5 {
	limit := (int64(totalSectors) - md5SkipSectors) * sectorSize
	return &isoMD5{h: md5.New(), limit: limit, fragSize: limit / (md5FragmentCount + 1)}
}

func (m *isoMD5) consume(b []byte) {
	for len(b) > 0 && m.off < m.limit {
		n := int64(len(b))
		n = min(n, md5ReadSize-m.off%md5ReadSize, m.limit-m.off)
		m.h.Write(b[:n])
		m.off += n
		b = b[n:]
		if m.off%md5ReadSize == 0 || m.off == m.limit {
			start := (m.off - 1) / md5ReadSize * md5ReadSize
			if frag := start / max(m.fragSize, 1); frag != m.prev {
				// isomd5sum prints each of the first digest bytes with
				// "%01x" into a 2-byte buffer: one hex digit per byte, the
				// high one unless the byte is below 0x10.
				sum := m.h.Sum(nil)
				for _, c := range sum[:md5FragmentChars] {
					m.frags.WriteByte(strconv.FormatUint(uint64(c), 16)[0])
				}
				m.prev = frag
			}
		}
	}
}

// appData is the application-use area implantisomd5 writes.
func (m *isoMD5) appData() (string, []byte) {
	sum := hex.EncodeToString(m.h.Sum(nil))
	frags := m.frags.String()
	if len(frags) > md5FragmentCount*md5FragmentChars {
		frags = frags[:md5FragmentCount*md5FragmentChars]
	}
	s := fmt.Sprintf("ISO MD5SUM = %s;SKIPSECTORS = %d;RHLISOSTATUS=0;FRAGMENT SUMS = %s;FRAGMENT COUNT = %d;THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!",
		sum, md5SkipSectors, frags, md5FragmentCount)
	b := bytes.Repeat([]byte{' '}, 512)
	copy(b, s)
	return sum, b
}
