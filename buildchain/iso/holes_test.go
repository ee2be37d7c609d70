package iso

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// crafted builds hostile images byte by byte: sectors 0-15 empty, the
// primary volume descriptor at 16, the terminator at 17, then whatever
// the test appends (directory extents, continuation areas, data).
type crafted struct{ img []byte }

func newCrafted() *crafted {
	c := &crafted{img: make([]byte, 18*sectorSize)}
	d := c.img[16*sectorSize:]
	d[0] = volPrimary
	copy(d[1:6], "CD001")
	d[6] = 1
	padField(d[40:72], "HOSTILE")
	bothEndian16(d[128:], sectorSize)
	t := c.img[17*sectorSize:]
	t[0] = volTerminator
	copy(t[1:6], "CD001")
	t[6] = 1
	return c
}

// alloc appends b on whole sectors and returns its first sector.
func (c *crafted) alloc(b []byte) uint32 {
	lba := uint32(len(c.img) / sectorSize)
	c.img = append(c.img, b...)
	if r := len(c.img) % sectorSize; r != 0 {
		c.img = append(c.img, make([]byte, sectorSize-r)...)
	}
	return lba
}

// dir lays out a directory extent from records (each one whole) at lba,
// with the next free sectors reserved for it when lba is 0.
func dirExtent(recs ...[]byte) []byte {
	sw := &sectorWriter{}
	for _, r := range recs {
		sw.add(r)
	}
	return sw.finish(uint32(len(sw.b)+sectorSize-1) / sectorSize * sectorSize)
}

// rootDots are the "." (with SP and ER: Rock Ridge) and ".." records of a
// root directory at lba of size bytes.
func rootDots(lba, size uint32) [][]byte {
	dotSU := append(spEntry(), erEntry()...)
	return [][]byte{
		dirRecord(nil, []byte{0}, lba, size, flagDir, testEpoch, dotSU),
		dirRecord(nil, []byte{1}, lba, size, flagDir, testEpoch, nil),
	}
}

// setRoot writes the root directory (its records after the dots) and
// points the descriptor at it.
func (c *crafted) setRoot(recs ...[]byte) {
	lba := uint32(len(c.img) / sectorSize)
	size := uint32(len(dirExtent(append(rootDots(0, 0), recs...)...)))
	c.alloc(dirExtent(append(rootDots(lba, size), recs...)...))
	copy(c.img[16*sectorSize+156:], dirRecord(nil, []byte{0}, lba, size, flagDir, testEpoch, nil))
}

func (c *crafted) open(t *testing.T) *Image {
	t.Helper()
	im, err := Open(bytes.NewReader(c.img), int64(len(c.img)))
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func su(es ...[]byte) []byte { return bytes.Join(es, nil) }

func px(mode uint32) []byte { return pxEntry(&inode{mode: mode, nlink: 1}) }

func nm(name string) []byte { return nmEntries(name)[0] }

func sl(target string) []byte { return bytes.Join(slEntries(target), nil) }

func hasProblem(im *Image, path, text string) bool {
	for _, p := range im.Problems {
		if p.Path == path && strings.Contains(p.Msg, text) {
			return true
		}
	}
	return false
}

// TestFlagsModeEntriesDisagree (issue 10, 3b): a record whose directory
// flag, PX mode and SUSP entries disagree is a Problem, never read one way.
// A walker trusting the flag descended into "esc" as a directory, while
// the kernel, isoinfo and bsdtar see a link to /etc.
func TestFlagsModeEntriesDisagree(t *testing.T) {
	for name, tc := range map[string]struct {
		flags byte
		su    []byte
		want  string
	}{
		"dir flag, PX symlink, SL to /etc": {flagDir, su(px(pxSymlink|0o777), nm("esc"), sl("/etc")), "PX says symbolic link"},
		"dir flag, PX regular":             {flagDir, su(px(pxRegular|0o644), nm("esc")), "PX says regular file"},
		"no dir flag, PX directory":        {0, su(px(pxDir|0o755), nm("esc")), "not flagged as one"},
		"SL on a regular file":             {0, su(px(pxRegular|0o644), nm("esc"), sl("/etc")), "SL) on a regular file"},
		"PX symlink without SL":            {0, su(px(pxSymlink|0o777), nm("esc")), "no SL target"},
		"SL without PX":                    {0, su(nm("esc"), sl("/etc")), "without a Rock Ridge mode"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCrafted()
			sub := uint32(len(c.img)/sectorSize) + 1 // after the root
			c.setRoot(dirRecord(nil, []byte("ESC"), sub, sectorSize, tc.flags, testEpoch, tc.su))
			c.alloc(dirExtent(dirRecord(nil, []byte{0}, sub, sectorSize, flagDir, testEpoch, nil), dirRecord(nil, []byte{1}, 18, sectorSize, flagDir, testEpoch, nil)))
			im := c.open(t)
			if !im.RockRidge || !hasProblem(im, "esc", tc.want) {
				t.Fatalf("no problem %q at esc: %v", tc.want, im.Problems)
			}
			if _, err := im.Lstat("esc"); err == nil {
				t.Errorf("esc is listed as if it were one thing")
			}
		})
	}
}

// TestEntriesInDotSlots (issue 10, 3c): a real entry where "." or ".."
// belongs is a Problem, and it is listed, so that validation checks it
// as bsdtar and 7z show it.
func TestEntriesInDotSlots(t *testing.T) {
	evil := dirRecord(nil, []byte("EVIL"), 0, 0, 0, testEpoch, su(px(pxSymlink|0o777), nm("evil"), sl("/etc")))
	c := newCrafted()
	lba := uint32(len(c.img) / sectorSize)
	sub := lba + 1
	dots := rootDots(lba, sectorSize)
	subEvil := dirRecord(nil, []byte("EVIL2"), 0, 0, 0, testEpoch, su(px(pxSymlink|0o777), nm("evil2"), sl("../../etc")))
	c.alloc(dirExtent(dots[0], evil, dirRecord(nil, []byte("SUB"), sub, sectorSize, flagDir, testEpoch, su(px(pxDir|0o755), nm("sub")))))
	c.alloc(dirExtent(subEvil, dirRecord(nil, []byte{1}, lba, sectorSize, flagDir, testEpoch, nil)))
	copy(c.img[16*sectorSize+156:], dirRecord(nil, []byte{0}, lba, sectorSize, flagDir, testEpoch, nil))
	im := c.open(t)
	if !hasProblem(im, "", `record 1 of the directory is "EVIL"`) || !hasProblem(im, "sub", `record 0 of the directory is "EVIL2"`) {
		t.Fatalf("problems: %v", im.Problems)
	}
	for p, want := range map[string]string{"evil": "/etc", "sub/evil2": "../../etc"} {
		if got, err := im.ReadLink(p); err != nil || got != want {
			t.Errorf("%s: %q, %v; want the link listed", p, got, err)
		}
	}
}

// TestLongNamesThroughContinuationAreas (issue 10, 5): 10,000 records
// whose continuation areas all point at one sector of NM entries that
// chains to itself. Each record used to build a 64 KiB name (1.2 GB of
// RSS in inspect); names are now cut at MaxNameLen and continuation
// areas come out of a budget of the image's size.
func TestLongNamesThroughContinuationAreas(t *testing.T) {
	c := newCrafted()
	area := c.alloc(make([]byte, 2*sectorSize))
	var nms []byte
	for len(nms)+255+ceLen <= sectorSize {
		e := entryHeader(sigNM, 255)
		e[4] = nmCont
		copy(e[5:], strings.Repeat("n", 250))
		nms = append(nms, e...)
	}
	// Area 0: NM entries only. Area 1: NM entries, then a CE to itself.
	ces := [][]byte{ceEntry(cePos{0, 0, uint32(len(nms))}, area), ceEntry(cePos{1, 0, uint32(len(nms) + ceLen)}, area)}
	copy(c.img[int(area)*sectorSize:], nms)
	copy(c.img[int(area+1)*sectorSize:], append(nms, ces[1]...))
	var recs [][]byte
	for i := range 10000 {
		recs = append(recs, dirRecord(nil, fmt.Appendf(nil, "F%05d", i), 0, 0, 0, testEpoch, ces[i%2]))
	}
	c.setRoot(recs...)
	t.Logf("image of %d bytes", len(c.img))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	im := c.open(t)
	runtime.ReadMemStats(&after)
	if n := len(im.Entries()); n != 0 {
		t.Errorf("%d entries listed", n)
	}
	long, budget := 0, 0
	for _, p := range im.Problems {
		switch {
		case strings.Contains(p.Msg, fmt.Sprintf("longer than %d bytes", MaxNameLen)):
			long++
		case strings.Contains(p.Msg, "more metadata than"):
			budget++
		}
	}
	if long == 0 || budget == 0 || long+budget != 10000 {
		t.Errorf("%d name and %d budget problems for 10000 records", long, budget)
	}
	// Allocation, not timing: what the reader allocates is bounded by
	// the image, not by the 10,000 x 64 KiB the records claim.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32*uint64(len(c.img)) {
		t.Errorf("Open allocated %d bytes for a %d-byte image", alloc, len(c.img))
	}
}

// TestExtentReuse (issue 10, 5): a multi-extent file whose pieces all
// point at the same 5 MiB, and files of distinct sizes over those same
// bytes, kept a validator hashing for minutes. The pieces are refused, and
// the distinct contents served stay within MaxExtentReuse times the image.
func TestExtentReuse(t *testing.T) {
	c := newCrafted()
	const data = 5 << 20
	lba := c.alloc(bytes.Repeat([]byte("x"), data))
	var recs [][]byte
	for i := range 2000 {
		flags := byte(flagNotFinal)
		if i == 1999 {
			flags = 0
		}
		recs = append(recs, dirRecord(nil, []byte("BIG"), lba, data, flags, testEpoch, su(px(pxRegular|0o644), nm("big"))))
	}
	for i := range 200 {
		name := fmt.Sprintf("f%03d", i)
		recs = append(recs, dirRecord(nil, []byte(strings.ToUpper(name)), lba, uint32(data-i), 0, testEpoch, su(px(pxRegular|0o644), nm(name))))
	}
	c.setRoot(recs...)
	im := c.open(t)
	if !hasProblem(im, "big", "pieces of the multi-extent file overlap") {
		t.Errorf("no problem for big: %v", im.Problems[:min(3, len(im.Problems))])
	}
	if _, err := im.Open("big"); err == nil {
		t.Errorf("big opens")
	}
	served := map[string]bool{}
	var distinct int64
	refused := 0
	for _, e := range im.Entries() {
		if e.extents == nil {
			refused++
			continue
		}
		if k := e.ExtentKey(); !served[k] {
			served[k] = true
			distinct += e.Size
		}
	}
	if distinct > MaxExtentReuse*int64(len(c.img)) || refused < 150 {
		t.Errorf("%d bytes of distinct content served from a %d-byte image, %d files refused", distinct, len(c.img), refused)
	}
	if !hasProblem(im, "f199", "extents are reused") {
		t.Errorf("no problem for f199")
	}
}

// TestJolietDiffers (issue 10, 9): the Joliet tree must list the files of
// the Rock Ridge tree with the same content. A Joliet product.txt pointed
// at another version's bytes, and a Joliet name for a file the Rock Ridge
// tree does not have, are Problems naming the path.
func TestJolietDiffers(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "product.txt"), "VERSION=1.0.0\n", 0o644)
	writeFile(t, filepath.Join(src, "decoy", "other.txt"), "VERSION=6.6.6\n", 0o644)
	writeFile(t, filepath.Join(src, "renamed.txt"), "r\n", 0o644)
	out := filepath.Join(t.TempDir(), "x.iso")
	opts := productOpts()
	opts.NoChecksumFile = true
	if _, err := Write(context.Background(), out, src, opts); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(out)
	must(t, err)
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	must(t, err)
	if len(im.Problems) != 0 {
		t.Fatalf("problems before patching: %v", im.Problems)
	}
	other, err := im.JolietFS().Lstat("decoy/other.txt")
	must(t, err)
	otherLBA := other.Sys().(*Entry).extents[0].LBA
	jroot := img[binary.LittleEndian.Uint32(img[17*sectorSize+158:])*sectorSize:]
	patch := func(name string, fn func(rec []byte)) {
		id := ucs2(jolietUnits(name))
		i := bytes.Index(jroot[:sectorSize], id)
		if i < 33 {
			t.Fatalf("no Joliet record for %s", name)
		}
		fn(jroot[i-33:])
	}
	patch("product.txt", func(rec []byte) { bothEndian32(rec[2:], otherLBA) })
	patch("renamed.txt", func(rec []byte) { copy(rec[33:], ucs2(jolietUnits("rEnamed.txt"))) })
	im, err = Open(bytes.NewReader(img), int64(len(img)))
	must(t, err)
	for p, want := range map[string]string{
		"product.txt": "the Joliet tree gives it other content",
		"renamed.txt": "missing from the Joliet tree",
		"rEnamed.txt": "in the Joliet tree (regular file), missing from the Rock Ridge tree",
	} {
		if !hasProblem(im, p, want) {
			t.Errorf("no problem %q at %s: %v", want, p, im.Problems)
		}
	}
	if b, _ := fs.ReadFile(im.JolietFS(), "product.txt"); string(b) != "VERSION=6.6.6\n" {
		t.Fatalf("the patch did not take: %q", b)
	}
}
