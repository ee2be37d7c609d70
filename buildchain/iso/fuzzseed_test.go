package iso

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// TestWriteFuzzSeeds regenerates the seed corpora under testdata/fuzz from
// real inputs: directory extents of images that genisoimage, xorriso and
// mkiso make of the test corpus, the names and symlink targets of that
// corpus, and the output of sha256sum. It only runs when asked to:
//
//	ISO_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./buildchain/iso/
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("ISO_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set ISO_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	src := filepath.Join(t.TempDir(), "src")
	makeCorpus(t, src, corpusOpts{jolietCollide: true, deep: true})
	for _, name := range []string{"FuzzParseDirRecords", "FuzzRockRidgeRoundTrip", "FuzzNames", "FuzzSHA256SUM"} {
		dir := filepath.Join("testdata", "fuzz", name)
		must(t, os.RemoveAll(dir))
		must(t, os.MkdirAll(dir, 0o755))
	}

	// Directory extents. The external tools also get a FIFO, which mkiso
	// refuses but they store.
	ext := filepath.Join(t.TempDir(), "ext")
	must(t, exec.Command("cp", "-a", src, ext).Run())
	must(t, syscall.Mkfifo(filepath.Join(ext, "links", "fifo"), 0o644))
	// genisoimage gives up on names equal in their first 103 characters.
	for _, n := range []string{"-one", "-two"} {
		must(t, os.Remove(filepath.Join(ext, "collide", nameOf(110, "")+n)))
	}
	out := t.TempDir()
	images := map[string]string{"mkiso": filepath.Join(out, "mkiso.iso")}
	buildISO(t, src, images["mkiso"], productOpts())
	// genisoimage relocates the deep tree (RE, CL, PL in rr_moved);
	// xorriso writes it deep, as mkiso does.
	images["genisoimage"] = filepath.Join(out, "genisoimage.iso")
	run(t, testenv.Need(t, "genisoimage")[0], "-quiet", "-R", "-J", "-joliet-long", "-l", "-iso-level", "3", "-o", images["genisoimage"], ext)
	images["xorriso"] = filepath.Join(out, "xorriso.iso")
	run(t, testenv.Need(t, "xorriso")[0], "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-iso-level", "3", "-o", images["xorriso"], ext)
	for tool, p := range images {
		img, err := os.ReadFile(p)
		must(t, err)
		// Walk the directories without decoding system use: genisoimage
		// writes the longest symlink's SL entry with a length byte that
		// wrapped around (280 bytes stored as 24), which the reader rightly
		// rejects; that extent makes a good seed all the same.
		pvd := img[16*sectorSize:]
		lbas := map[string]uint32{}
		var walk func(p string, lba, size uint32)
		walk = func(p string, lba, size uint32) {
			lbas[p] = lba
			recs, err := dirRecords(img[int64(lba)*sectorSize : int64(lba)*sectorSize+int64(size)])
			must(t, err)
			for _, r := range recs[2:] {
				if r.flags&flagDir != 0 {
					walk(p+"/"+string(r.name), r.lba, r.size)
				}
			}
		}
		walk("", binary.LittleEndian.Uint32(pvd[158:]), binary.LittleEndian.Uint32(pvd[166:]))
		for p, lba := range lbas {
			seeds, err := dirSeeds(img, lba)
			must(t, err)
			for i, seed := range seeds {
				writeSeed(t, "FuzzParseDirRecords", fmt.Sprintf("%s-%s-%d", tool, seedName(p), i), fmt.Sprintf("[]byte(%q)", seed))
			}
		}
	}

	// Names: each directory of the corpus is a list; symlinks give
	// targets, paired with the longest names.
	var longest []string
	must(t, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(src, p)
		seed := seedName(rel)
		if d.IsDir() {
			es, err := os.ReadDir(p)
			must(t, err)
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			if len(names) > 1 {
				writeSeed(t, "FuzzNames", seed, fmt.Sprintf("string(%q)", strings.Join(names, "\n")))
			}
		}
		longest = append(longest, d.Name())
		if d.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			must(t, err)
			writeSeed(t, "FuzzRockRidgeRoundTrip", seed, fmt.Sprintf("string(%q)\nbyte('\\x00')\nstring(%q)\nbyte('\\x00')", d.Name(), target))
		}
		return nil
	}))
	sort.Slice(longest, func(i, j int) bool { return len(longest[i]) > len(longest[j]) })
	for i, n := range longest[:4] {
		// Long names and targets, reached through repetition.
		writeSeed(t, "FuzzRockRidgeRoundTrip", fmt.Sprintf("long%d", i), fmt.Sprintf("string(%q)\nbyte('\\x%02x')\nstring(%q)\nbyte('\\x%02x')", n, 1, "../segment/./"+n[:20]+"/", 20+i))
	}

	// SHA256SUM files as sha256sum writes them, with names that need its
	// escapes, in text and binary mode.
	sums := t.TempDir()
	names := []string{"metalk8s-2.0.0.iso", "with space.iso", "back\\slash.iso", "new\nline.iso", "carriage\rreturn.iso"}
	for _, n := range names {
		writeFile(t, filepath.Join(sums, n), n, 0o644)
	}
	sha := testenv.Need(t, "sha256sum")[0]
	for i, mode := range []string{"-t", "-b"} {
		cmd := exec.Command(sha, append([]string{mode}, names...)...)
		cmd.Dir = sums
		b, err := cmd.Output()
		must(t, err)
		for j, n := range names {
			writeSeed(t, "FuzzSHA256SUM", fmt.Sprintf("sha256sum%s-%d", mode, j), fmt.Sprintf("[]byte(%q)\nstring(%q)", b, n))
		}
		if i == 0 {
			writeSeed(t, "FuzzSHA256SUM", "new-name", fmt.Sprintf("[]byte(%q)\nstring(%q)", b, "other.iso"))
		}
	}
}

// seedName makes a short file name out of a path in the corpus.
func seedName(p string) string {
	p = strings.Trim(p, "/.")
	if p == "" {
		return "root"
	}
	if len(p) > 40 {
		p = fmt.Sprintf("%s-%x", p[:24], sha256.Sum256([]byte(p)))[:40]
	}
	return strings.NewReplacer("/", "_", " ", "_").Replace(p)
}

func writeSeed(t *testing.T, target, name, values string) {
	must(t, os.WriteFile(filepath.Join("testdata", "fuzz", target, name), []byte("go test fuzz v1\n"+values+"\n"), 0o644))
}

// dirSeeds cuts the first sector of the directory extent at lba out of an
// image into seeds of the form FuzzParseDirRecords reads: a few records,
// a zero byte (padding, which ends a sector's records), then each
// continuation area they chain to, with the CE entries rewritten to point
// there. Seeds are kept near maxSeed bytes: an input that finds new
// coverage is minimized, and Go's minimizer is quadratic in the input's
// length (a 4 KiB input keeps a worker busy for the whole 60 s budget).
func dirSeeds(img []byte, lba uint32) ([][]byte, error) {
	const maxSeed = 768
	sector := img[int64(lba)*sectorSize : int64(lba+1)*sectorSize]
	var recs [][]byte
	for off := 0; off < len(sector) && sector[off] != 0; off += int(sector[off]) {
		recs = append(recs, sector[off:off+int(sector[off])])
	}
	var seeds [][]byte
	for i := 0; i < len(recs); {
		var group []byte
		for ; i < len(recs); i++ {
			next, err := dirSeed(img, append(append([]byte(nil), group...), recs[i]...))
			if err != nil {
				return nil, err
			}
			if group != nil && len(next) > maxSeed {
				break
			}
			group = append(group, recs[i]...)
		}
		seed, err := dirSeed(img, group)
		if err != nil {
			return nil, err
		}
		seeds = append(seeds, seed)
	}
	return seeds, nil
}

// dirSeed appends to records the continuation areas they chain to.
func dirSeed(img, records []byte) ([]byte, error) {
	seed := append(append([]byte(nil), records...), 0)
	recs, err := dirRecords(seed)
	if err != nil {
		return nil, err
	}
	// Each CE entry found (at an offset in seed) is patched once its area
	// is appended; areas never cross a sector, as Linux requires.
	var queue []int
	findCE := func(base int, su []byte) {
		for i := 0; i+4 <= len(su) && su[i+2] >= 4 && i+int(su[i+2]) <= len(su); i += int(su[i+2]) {
			if string(su[i:i+2]) == "CE" && su[i+2] == ceLen {
				queue = append(queue, base+i)
			}
		}
	}
	for _, r := range recs {
		if len(r.su) > 0 {
			findCE(bytes.Index(seed, r.su), r.su)
		}
	}
	for len(queue) > 0 {
		at := queue[0]
		queue = queue[1:]
		e := seed[at : at+ceLen]
		from := int64(binary.LittleEndian.Uint32(e[4:]))*sectorSize + int64(binary.LittleEndian.Uint32(e[12:]))
		n := int(binary.LittleEndian.Uint32(e[20:]))
		if len(seed)%sectorSize+n > sectorSize {
			seed = append(seed, make([]byte, sectorSize-len(seed)%sectorSize)...)
		}
		off := len(seed)
		bothEndian32(seed[at+4:], uint32(off/sectorSize))
		bothEndian32(seed[at+12:], uint32(off%sectorSize))
		seed = append(seed, img[from:from+int64(n)]...)
		findCE(off, seed[off:off+n])
	}
	return seed, nil
}
