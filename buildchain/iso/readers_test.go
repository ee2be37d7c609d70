package iso

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/kdomanski/iso9660"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// TestReaders writes the corpus once and has every independent reader
// check it against the source tree.
func TestReaders(t *testing.T) {
	many := 20000
	if testing.Short() {
		many = 2000
	}
	src := filepath.Join(t.TempDir(), "src")
	makeCorpus(t, src, corpusOpts{many: many, jolietCollide: true, deep: true})
	want := scan(t, src)
	out := filepath.Join(t.TempDir(), "out", "metalk8s.iso")
	must(t, os.MkdirAll(filepath.Dir(out), 0o755))
	opts := productOpts()
	opts.ImplantMD5 = true
	res := buildISO(t, src, out, opts)
	t.Logf("image: %d bytes, %d files, %d extents, %d bytes shared", res.Size, res.Files, res.Extents, res.SharedBytes)

	t.Run("inspect", func(t *testing.T) { checkStructure(t, out, src, want) })
	t.Run("isoinfo", func(t *testing.T) { checkIsoinfo(t, out, src, want) })
	t.Run("xorriso", func(t *testing.T) { checkXorriso(t, out, want) })
	t.Run("bsdtar", func(t *testing.T) { checkBsdtar(t, out, want) })
	t.Run("7z", func(t *testing.T) { check7z(t, out, want) })
	t.Run("fuseiso", func(t *testing.T) { checkFuseiso(t, out, src) })
	t.Run("kdomanski", func(t *testing.T) { checkGoReader(t, out, want) })
	t.Run("checkisomd5", func(t *testing.T) {
		bin := testenv.Need(t, "checkisomd5")
		run(t, bin[0], out)
	})
	t.Run("sha256sum", func(t *testing.T) {
		bin := testenv.Need(t, "sha256sum")
		cmd := exec.Command(bin[0], "-c", "SHA256SUM")
		cmd.Dir = filepath.Dir(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum -c: %v\n%s", err, b)
		}
	})
}

// checkStructure uses the package's reader for what tools do not show:
// serial numbers and link counts, shared extents, TF entries, primary
// identifiers. The tools below are the independent check of the rest.
func checkStructure(t *testing.T, iso, src string, want map[string]entry) {
	f, err := os.Open(iso)
	must(t, err)
	defer f.Close()
	fi, err := f.Stat()
	must(t, err)
	im, err := Open(f, fi.Size())
	must(t, err)
	if len(im.Problems) != 0 {
		t.Errorf("the reader finds problems: %v", im.Problems)
	}
	recs := map[string]*Entry{}
	for _, e := range im.Entries() {
		recs[e.Path()] = e
	}
	if len(recs) != len(want) {
		t.Errorf("%d entries in the image, %d in the source", len(recs), len(want))
	}
	serialOf := map[uint64]uint32{}
	serials := map[uint32]string{}
	for p, w := range want {
		ri, ok := recs[p]
		if !ok {
			t.Errorf("missing %s", p)
			continue
		}
		if w.typ == 'f' {
			if s, ok := serialOf[w.ino]; ok && s != ri.Ino {
				t.Errorf("%s: serial %d, but its hard link has %d", p, ri.Ino, s)
			}
			serialOf[w.ino] = ri.Ino
			if uint64(ri.Nlink) != w.nlink {
				t.Errorf("%s: nlink %d, want %d", p, ri.Nlink, w.nlink)
			}
		}
		if other, ok := serials[ri.Ino]; ok && (w.typ != 'f' || want[other].ino != w.ino) {
			t.Errorf("%s and %s share serial %d but are not hard links", p, other, ri.Ino)
		}
		serials[ri.Ino] = p
		if w.typ == 'l' && ri.Target != w.target {
			t.Errorf("%s: SL decodes to %q, want %q", p, ri.Target, w.target)
		}
		if !ri.tf {
			t.Errorf("%s: no TF", p)
		}
	}
	for p, w := range want {
		if w.typ != 'f' {
			continue
		}
		r, err := im.Open(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		r.Close()
		if got := hex.EncodeToString(h.Sum(nil)); err != nil || n != w.size || got != w.sum {
			t.Errorf("%s: extent content differs from the source (%d bytes, %v)", p, n, err)
		}
	}
	lba := func(p string) uint32 {
		e := recs[p]
		if e == nil || len(e.extents) == 0 {
			t.Fatalf("%s: no extent", p)
		}
		return e.extents[0].LBA
	}
	one, two := lba("dup/one.bin"), lba("dup/two.bin")
	if one != two {
		t.Errorf("identical files at sectors %d and %d: not shared", one, two)
	}
	if three := lba("dup/three.bin"); three == one {
		t.Errorf("different content of the same size shares sector %d", one)
	}
	if a, b := lba("hard/a.bin"), lba("links/hard-c.bin"); a != b {
		t.Errorf("hard links at sectors %d and %d", a, b)
	}
	for p, e := range recs {
		if len(e.ISOName) > 33 {
			t.Errorf("%s: primary identifier %q longer than 31+2", p, e.ISOName)
		}
	}
}

var isoinfoLine = regexp.MustCompile(`^([-dl][-rwxsStT]{9})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\d+\s+\d+\s+\[\s*\d+\s+\d+\]\s\s(.*?)\s?$`)

type listed struct {
	perm                 string
	links, uid, gid      int
	size                 int64
	name, target, parent string
}

// parseIsoinfo reads `isoinfo -l` output into path -> entry.
func parseIsoinfo(t testing.TB, out string) map[string]listed {
	m := map[string]listed{}
	dir := ""
	for _, line := range strings.Split(out, "\n") {
		if d, ok := strings.CutPrefix(line, "Directory listing of "); ok {
			dir = strings.TrimSuffix(d, "/")
			continue
		}
		mm := isoinfoLine.FindStringSubmatch(line)
		if mm == nil {
			continue
		}
		l := listed{perm: mm[1], parent: dir}
		l.links, _ = strconv.Atoi(mm[2])
		l.uid, _ = strconv.Atoi(mm[3])
		l.gid, _ = strconv.Atoi(mm[4])
		l.size, _ = strconv.ParseInt(mm[5], 10, 64)
		l.name = mm[6]
		if l.perm[0] == 'l' {
			l.name, l.target, _ = strings.Cut(l.name, " -> ")
		}
		if l.name == "." || l.name == ".." {
			continue
		}
		m[strings.TrimPrefix(dir+"/"+l.name, "/")] = l
	}
	return m
}

func permString(typ byte, p os.FileMode) string {
	c := "-"
	if typ == 'd' {
		c = "d"
	} else if typ == 'l' {
		c = "l"
	}
	return c + p.String()[1:]
}

func checkIsoinfo(t *testing.T, iso, src string, want map[string]entry) {
	bin := testenv.Need(t, "isoinfo")[0]
	d := run(t, bin, "-d", "-i", iso)
	for _, s := range []string{"Volume id: MetalK8s 2.0.0", "Rock Ridge signatures version 1 found", "Joliet with UCS level 3 found"} {
		if !strings.Contains(d, s) {
			t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
		}
	}
	got := parseIsoinfo(t, run(t, bin, "-R", "-l", "-i", iso))
	m := map[string]entry{}
	for p, l := range got {
		e := entry{typ: l.perm[0], size: l.size, target: l.target}
		if e.typ == '-' {
			e.typ = 'f'
		}
		want := want[p]
		if e.typ != 'l' && l.perm != permString(want.typ, want.perm) {
			t.Errorf("isoinfo -R: %s mode %s, want %s", p, l.perm, permString(want.typ, want.perm))
		}
		e.perm, e.sum = want.perm, want.sum // compared above / content below
		if e.typ != 'f' {
			e.size = 0
		}
		m[p] = e
	}
	compareTrees(t, "isoinfo -R -l", want, m, false)

	// Joliet names: the source names truncated to 103 UCS-2 characters.
	jl := parseIsoinfo(t, run(t, bin, "-J", "-l", "-i", iso))
	if len(jl) != len(want) {
		t.Errorf("isoinfo -J lists %d entries, the source has %d", len(jl), len(want))
	}
	for p := range want {
		if strings.Contains(p, "-one") || strings.Contains(p, "-two") {
			continue // made unique, checked in TestJolietCollisions
		}
		if _, ok := jl[isoinfoJoliet(p)]; !ok {
			t.Errorf("isoinfo -J: no %q for %s", isoinfoJoliet(p), p)
		}
	}

	b := run(t, bin, "-i", iso, "-x", "/PRODUCT.TXT;1")
	if wantB, _ := os.ReadFile(filepath.Join(src, "PRODUCT.TXT")); b != string(wantB) {
		t.Errorf("isoinfo -x /PRODUCT.TXT;1 = %q, want %q", b, wantB)
	}
}

// isoinfoJoliet is how isoinfo prints a Joliet path: names cut to 103
// UCS-2 units, and characters above 0xFF shown as '_'.
func isoinfoJoliet(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		u := jolietUnits(s)
		if len(u) > 103 {
			u = u[:103]
		}
		var sb strings.Builder
		for _, c := range u {
			if c > 0xFF {
				c = '_'
			}
			sb.WriteByte(byte(c))
		}
		parts[i] = sb.String()
	}
	return strings.Join(parts, "/")
}

var lsdlLine = regexp.MustCompile(`^([-dl][-rwxsStT]{9})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\d+\s+\S+\s+'(.*?)'(?: -> '(.*)')?$`)

func checkXorriso(t *testing.T, iso string, want map[string]entry) {
	bin := testenv.Need(t, "xorriso")[0]
	out := run(t, bin, "-abort_on", "FAILURE", "-hardlinks", "on", "-indev", iso, "-find", "/", "-exec", "lsdl", "--")
	got := map[string]entry{}
	for _, line := range strings.Split(out, "\n") {
		mm := lsdlLine.FindStringSubmatch(line)
		if mm == nil || mm[6] == "/" {
			continue
		}
		e := entry{typ: mm[1][0], target: mm[7]}
		if e.typ == '-' {
			e.typ = 'f'
		}
		p := strings.TrimPrefix(mm[6], "/")
		w := want[p]
		if e.typ != 'l' && mm[1] != permString(w.typ, w.perm) {
			t.Errorf("xorriso: %s mode %s, want %s", p, mm[1], permString(w.typ, w.perm))
		}
		e.perm, e.sum = w.perm, w.sum
		if e.typ == 'f' {
			e.size, _ = strconv.ParseInt(mm[5], 10, 64)
		}
		got[p] = e
	}
	compareTrees(t, "xorriso -find -exec lsdl", want, got, false)
	cm := run(t, bin, "-abort_on", "FAILURE", "-indev", iso, "-check_media", "--")
	if !strings.Contains(cm, "good") || strings.Contains(cm, " bad") || strings.Contains(cm, "unreadable") {
		t.Errorf("xorriso -check_media:\n%s", cm)
	}
}

func checkBsdtar(t *testing.T, iso string, want map[string]entry) {
	bin := testenv.Need(t, "bsdtar")[0]
	dst := t.TempDir()
	run(t, bin, "-xpf", iso, "-C", dst)
	compareTrees(t, "bsdtar -xf", want, scan(t, dst), true)
}

func check7z(t *testing.T, iso string, want map[string]entry) {
	bin := testenv.Need(t, "7z")[0]
	out := run(t, bin, "l", "-slt", iso)
	got := map[string]int64{}
	var cur string
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "Path = "); ok {
			cur = p
		}
		if s, ok := strings.CutPrefix(line, "Size = "); ok && cur != "" {
			got[cur], _ = strconv.ParseInt(s, 10, 64)
			cur = ""
		}
	}
	delete(got, iso)
	if len(got) != len(want) {
		t.Errorf("7z lists %d entries, the source has %d", len(got), len(want))
	}
	for p, w := range want {
		if strings.Contains(p, "-one") || strings.Contains(p, "-two") {
			continue
		}
		jp := jolietPath(p)
		size, ok := got[jp]
		if !ok {
			t.Errorf("7z: no %q for %s", jp, p)
		} else if w.typ == 'f' && size != w.size {
			t.Errorf("7z: %s is %d bytes, want %d", jp, size, w.size)
		}
	}
}

// jolietPath is the Joliet form of a source path, decoded back to UTF-8.
func jolietPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		u := jolietUnits(s)
		if len(u) > 103 {
			u = u[:103]
		}
		parts[i] = string(utf16.Decode(u))
	}
	return strings.Join(parts, "/")
}

func checkFuseiso(t *testing.T, iso, src string) {
	bins := testenv.Need(t, "fuseiso", "fusermount", "diff")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if testenv.Required() {
			t.Fatal("/dev/fuse is missing")
		}
		t.Skip("/dev/fuse is missing")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	run(t, bins[0], iso, mnt)
	defer func() {
		for i := 0; i < 50; i++ {
			if exec.Command(bins[1], "-u", mnt).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("fusermount -u %s failed", mnt)
	}()
	// fuseiso ignores the CONTINUE flag of SL components, so targets that
	// need more than one 255-byte SL entry are left to the other readers.
	cmd := exec.Command(bins[2], "-r", "--no-dereference", "--exclude=longtarget", "--exclude=longcomp", src, mnt)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("diff -r source fuseiso-mount: %v\n%.3000s", err, b)
	}
}

// checkGoReader reads the image with kdomanski/iso9660. That reader only
// recognises the RRIP 1.10 ER identifier (RRIP_1991A), not the 1.12 one
// (IEEE_P1282) we write, as xorriso does; so it sees the ISO 9660 tree:
// the same directories, and regular files whose contents must be the
// source's (symlinks show as empty files). Names and attributes are
// checked by the other readers.
func checkGoReader(t *testing.T, isoPath string, want map[string]entry) {
	f, err := os.Open(isoPath)
	must(t, err)
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	must(t, err)
	if label, err := img.Label(); err != nil || label != "MetalK8s 2.0.0" {
		t.Errorf("label %q, %v", label, err)
	}
	root, err := img.RootDir()
	must(t, err)
	var got []string
	dirs := 0
	var walk func(dir *iso9660.File, p string)
	walk = func(dir *iso9660.File, p string) {
		kids, err := dir.GetChildren()
		must(t, err)
		for _, k := range kids {
			kp := path.Join(p, k.Name())
			if k.IsDir() {
				dirs++
				walk(k, kp)
				continue
			}
			h := sha256.New()
			if _, err := io.Copy(h, k.Reader()); err != nil {
				t.Fatalf("%s: %v", kp, err)
			}
			got = append(got, fmt.Sprintf("%d %x", k.Size(), h.Sum(nil)))
		}
	}
	walk(root, "")
	var exp []string
	wantDirs := 0
	empty := sha256.Sum256(nil)
	for _, e := range want {
		switch e.typ {
		case 'd':
			wantDirs++
		case 'l':
			exp = append(exp, fmt.Sprintf("0 %x", empty))
		default:
			exp = append(exp, fmt.Sprintf("%d %s", e.size, e.sum))
		}
	}
	sort.Strings(got)
	sort.Strings(exp)
	if dirs != wantDirs || strings.Join(got, ",") != strings.Join(exp, ",") {
		t.Errorf("kdomanski/iso9660 sees %d directories and %d files, want %d and %d, or contents differ", dirs, len(got), wantDirs, len(exp))
	}
}

// TestGenisoimageListings builds the same tree with genisoimage and mkiso
// and compares the Rock Ridge and Joliet listings isoinfo prints.
func TestGenisoimageListings(t *testing.T) {
	bins := testenv.Need(t, "genisoimage", "isoinfo")
	src := filepath.Join(t.TempDir(), "src")
	// genisoimage gives up on Joliet collisions, and relocates deep
	// directories unless -D; emoji names it maps differently.
	makeCorpus(t, src, corpusOpts{many: 300, deep: true})
	must(t, os.Remove(filepath.Join(src, "utf8", "emoji 😀 name.txt")))
	// genisoimage cuts symlink targets longer than its SL buffer.
	must(t, os.Remove(filepath.Join(src, "links", "longtarget")))
	must(t, os.Remove(filepath.Join(src, "links", "longcomp")))
	setTimes(t, src)
	dir := t.TempDir()
	g, m := filepath.Join(dir, "g.iso"), filepath.Join(dir, "m.iso")
	run(t, bins[0], "-quiet", "-R", "-J", "-joliet-long", "-l", "-iso-level", "3", "-D", "-uid", "0", "-gid", "0",
		"-input-charset", "utf-8", "-V", "MetalK8s 2.0.0", "-o", g, src)
	opts := productOpts()
	opts.Epoch = time.Now().Add(24 * time.Hour) // genisoimage does not clamp
	buildISO(t, src, m, opts)
	for _, mode := range []string{"-R", "-J"} {
		lg := normalizeListing(parseIsoinfo(t, run(t, bins[1], mode, "-l", "-i", g)))
		lm := normalizeListing(parseIsoinfo(t, run(t, bins[1], mode, "-l", "-i", m)))
		if lg != lm {
			t.Errorf("isoinfo %s -l differs between genisoimage and mkiso:\n%s", mode, diffLines(lg, lm))
		}
	}
}

// normalizeListing keeps what both writers must agree on; directory sizes
// depend on record packing and are left out.
func normalizeListing(m map[string]listed) string {
	var lines []string
	for p, l := range m {
		size := l.size
		if l.perm[0] == 'd' {
			size = 0
		}
		lines = append(lines, fmt.Sprintf("%s %s %d %d %d %d -> %s", p, l.perm, l.links, l.uid, l.gid, size, l.target))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func diffLines(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	inB := map[string]bool{}
	for _, l := range bs {
		inB[l] = true
	}
	inA := map[string]bool{}
	var out []string
	for _, l := range as {
		inA[l] = true
		if !inB[l] {
			out = append(out, "genisoimage: "+l)
		}
	}
	for _, l := range bs {
		if !inA[l] {
			out = append(out, "mkiso:       "+l)
		}
	}
	if len(out) > 40 {
		out = out[:40]
	}
	return strings.Join(out, "\n")
}
