package iso

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestWritePaths: the ways bytes reach the output (into a file, digested
// by reading it back behind the writer; chunks to any io.Writer, digested
// on their way; in-kernel copies with no digest) give the same image, and sharing finds exactly the
// identical contents, whether they are compared side by side or, in a big
// group, hashed.
func TestWritePaths(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	big := func(seed byte, tail string) string {
		// Same size and same 64 KiB head; contents differ (or not) at
		// the end, past the first compared chunk.
		b := bytes.Repeat([]byte{seed}, 3*compareChunk+5)
		return string(b[:len(b)-len(tail)]) + tail
	}
	w := func(rel, content string) { writeFile(t, filepath.Join(src, rel), content, 0o644) }
	w("pair/a", big('x', "same"))
	w("pair/b", big('x', "same"))
	w("pair/c", big('x', "diff"))
	w("pair/d", big('x', "same"))
	for i := 0; i < maxSideBySide+3; i++ { // hashed, not compared
		w(fmt.Sprintf("crowd/%02d", i), big('y', fmt.Sprint(i%4)))
	}
	w("small/1", "tiny\n")
	w("small/2", "tiny\n")
	w("small/3", "TINY\n")
	// A sparse file: holes around data, and a hole at its end.
	sparse := filepath.Join(src, "sparse.bin")
	f, err := os.Create(sparse)
	must(t, err)
	_, err = f.WriteAt([]byte("middle"), 6<<20)
	must(t, err)
	must(t, f.Truncate(sparseMin*3))
	must(t, f.Close())

	opts := productOpts()
	out := filepath.Join(t.TempDir(), "hashed.iso")
	res := buildISO(t, src, out, opts)
	hashed, err := os.ReadFile(out)
	must(t, err)
	if sum := sha256.Sum256(hashed); res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("Result.SHA256 %s is not the image's", res.SHA256)
	}
	// 4 + 11 + 3 + 1 files; shared: pair/b and pair/d, 11 - 4 of the
	// crowd, small/2.
	if res.Files != 19 || res.Extents != 19-2-7-1 {
		t.Errorf("%d files in %d extents, want 19 in 9", res.Files, res.Extents)
	}

	opts.NoChecksumFile = true
	outDirect := filepath.Join(t.TempDir(), "direct.iso")
	buildISO(t, src, outDirect, opts)
	direct, err := os.ReadFile(outDirect)
	must(t, err)
	if !bytes.Equal(direct, hashed) {
		t.Errorf("in-kernel copies give another image (%d bytes, %d)", len(direct), len(hashed))
	}

	opts = productOpts()
	opts.Epoch = testEpoch
	// Holes stay holes in both file paths: the sparse file's 12 MiB
	// must not be written out.
	for _, p := range []string{out, outDirect} {
		var st syscall.Stat_t
		must(t, syscall.Stat(p, &st))
		if st.Blocks*512 > st.Size-8<<20 {
			t.Errorf("%s: %d bytes allocated for %d", filepath.Base(p), st.Blocks*512, st.Size)
		}
	}
	b, err := New(opts)
	must(t, err)
	must(t, b.AddTree("", src))
	var buf bytes.Buffer
	if _, err := b.Write(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), hashed) {
		t.Errorf("Builder.Write gives another image")
	}

	// The contents, through the package's reader.
	im, err := Open(bytes.NewReader(direct), int64(len(direct)))
	must(t, err)
	if len(im.Problems) != 0 {
		t.Errorf("problems: %v", im.Problems)
	}
	for p, want := range map[string]string{"pair/d": big('x', "same"), "pair/c": big('x', "diff"), "crowd/09": big('y', "1"), "sparse.bin": ""} {
		b, err := fs.ReadFile(im, p)
		must(t, err)
		got := string(b)
		if p == "sparse.bin" {
			if len(got) != sparseMin*3 || strings.Trim(got, "\x00") != "middle" || got[6<<20:6<<20+6] != "middle" {
				t.Errorf("sparse.bin read back wrong")
			}
			continue
		}
		if got != want {
			t.Errorf("%s: content differs", p)
		}
	}
}

// TestChangingSources: a source that grows or shrinks between the stat and
// the read is an error naming it, on every path its bytes can take.
func TestChangingSources(t *testing.T) {
	type change struct {
		size     int64 // of the file
		twin     bool  // an identical file makes it a sharing candidate
		noSum    bool  // direct mode: copied in the kernel
		newSize  int64
		wantText string
	}
	for name, c := range map[string]change{
		"small grows":         {size: 100, newSize: 101, wantText: "grew"},
		"small shrinks":       {size: 100, newSize: 50, wantText: "shrank"},
		"chunked grows":       {size: 2<<20 + 7, newSize: 2<<20 + 8, wantText: "grew"},
		"chunked shrinks":     {size: 2<<20 + 7, newSize: 1 << 20, wantText: "shrank"},
		"direct grows":        {size: 2<<20 + 7, noSum: true, newSize: 3 << 20, wantText: "grew"},
		"direct shrinks":      {size: 2<<20 + 7, noSum: true, newSize: 1 << 20, wantText: "shrank"},
		"compared shrinks":    {size: 200 << 10, twin: true, newSize: 100 << 10, wantText: "changed size"},
		"small hashed shrink": {size: 100, twin: true, newSize: 50, wantText: "changed size"},
	} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			content := strings.Repeat("z", int(c.size))
			p := filepath.Join(src, "changing")
			writeFile(t, p, content, 0o644)
			if c.twin {
				writeFile(t, filepath.Join(src, "twin"), content, 0o644)
			}
			var once sync.Once
			old := openFile
			openFile = func(name string) (*source, error) {
				if name == p {
					once.Do(func() { must(t, os.Truncate(p, c.newSize)) })
				}
				return old(name)
			}
			t.Cleanup(func() { openFile = old })
			opts := productOpts()
			opts.NoChecksumFile = c.noSum
			outDir := t.TempDir()
			_, err := Write(context.Background(), filepath.Join(outDir, "x.iso"), src, opts)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.wantText) {
				t.Fatalf("error %v, want one naming %s with %q", err, p, c.wantText)
			}
			if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
				t.Fatalf("output directory not empty after an error: %v", entries)
			}
		})
	}
}

// TestCrossFilesystem: sources on another file system (tmpfs here, the
// output on the test's temporary directory) may refuse copy_file_range;
// the writer then moves the bytes through user space, and the image, its
// digest and its sharing are the same as through a plain io.Writer.
func TestCrossFilesystem(t *testing.T) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	shm, err := os.MkdirTemp("/dev/shm", "iso-test-")
	if err != nil {
		t.Skipf("/dev/shm not writable: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	out := filepath.Join(t.TempDir(), "x.iso")
	var ost syscall.Statfs_t
	must(t, syscall.Statfs(filepath.Dir(out), &ost))
	if ost.Type == st.Type {
		t.Skip("the output directory is on the same kind of file system as /dev/shm")
	}
	big := strings.Repeat("0123456789abcdef", 300<<10) // 4.7 MiB: copied in the kernel where it can be
	writeFile(t, filepath.Join(shm, "a", "layer"), big, 0o644)
	writeFile(t, filepath.Join(shm, "b", "layer"), big, 0o644)
	writeFile(t, filepath.Join(shm, "b", "small"), "small\n", 0o644)
	for _, noSum := range []bool{false, true} {
		opts := productOpts()
		opts.Epoch = testEpoch
		opts.NoChecksumFile = noSum
		res := buildISO(t, shm, out, opts)
		img, err := os.ReadFile(out)
		must(t, err)
		if !noSum {
			if sum := sha256.Sum256(img); res.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("Result.SHA256 %s is not the image's", res.SHA256)
			}
		}
		if res.Extents != 2 {
			t.Errorf("%d extents, want 2 (the layer shared)", res.Extents)
		}
		b, err := New(opts)
		must(t, err)
		must(t, b.AddTree("", shm))
		var buf bytes.Buffer
		if _, err := b.Write(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), img) {
			t.Errorf("no-sum %v: the image differs from Builder.Write's", noSum)
		}
	}
}

// TestStaleTemps: the temporary files of writers killed before they could
// clean up are removed by the next write into the directory, under its
// lock; those a live writer holds, and other files, stay.
func TestStaleTemps(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a"), "a\n", 0o644)
	dir := t.TempDir()
	stale := []string{".tmp-x.iso-111", ".x.iso.tmp-333", ".tmp-SHA256SUM-444", ".SHA256SUM.tmp-555"}
	kept := []string{".tmp-other.iso-1", "x.iso.tmp", "notes.txt"}
	for _, n := range append(stale, kept...) {
		writeFile(t, filepath.Join(dir, n), "litter\n", 0o644)
	}
	live, err := os.Create(filepath.Join(dir, ".tmp-x.iso-222"))
	must(t, err)
	defer live.Close()
	must(t, fsutil.Hold(live))
	kept = append(kept, ".tmp-x.iso-222")

	buildISO(t, src, filepath.Join(dir, "x.iso"), productOpts())
	for _, n := range stale {
		if _, err := os.Lstat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("stale %s not removed: %v", n, err)
		}
	}
	for _, n := range append(kept, "x.iso", "SHA256SUM") {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// TestDateClamp: mtimes after the last date a directory record can hold
// (2155) are clamped to it, not wrapped (2300 would read back as 2044);
// volume dates hold years up to 9999. Read back by isoinfo and from the
// volume descriptor's bytes.
func TestDateClamp(t *testing.T) {
	isoinfo := testenv.Need(t, "isoinfo")[0]
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "d", "future"), "x\n", 0o644)
	writeFile(t, filepath.Join(src, "now"), "y\n", 0o644)
	y2300 := time.Date(2300, 6, 1, 12, 0, 0, 0, time.UTC)
	// Not os.Chtimes: it goes through nanoseconds since 1970, which an
	// int64 holds only up to 2262.
	ts := []unix.Timespec{{Sec: y2300.Unix()}, {Sec: y2300.Unix()}}
	for _, p := range []string{filepath.Join(src, "d", "future"), filepath.Join(src, "d")} {
		must(t, unix.UtimesNano(p, ts))
		if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(y2300) {
			t.Fatalf("%s: mtime %v, %v", p, fi.ModTime(), err)
		}
	}
	for _, tc := range []struct {
		name    string
		epoch   string // SOURCE_DATE_EPOCH
		vol     string // the PVD's creation date
		nowYear string // of the file dated now
	}{
		// No epoch: mtimes are not clamped to it, only to 2155.
		{"no epoch", "", "", time.Now().UTC().Format("2006")},
		// An epoch in 2300: the volume date holds it, records cannot.
		{"epoch 2300", strconv.FormatInt(y2300.Unix(), 10), "2300060112000000", time.Now().UTC().Format("2006")},
		// An epoch past 9999 is clamped too.
		{"epoch 30000", "884541340800", "9999123123595900", time.Now().UTC().Format("2006")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.epoch)
			out := filepath.Join(t.TempDir(), "x.iso")
			if _, err := Write(context.Background(), out, src, productOpts()); err != nil {
				t.Fatal(err)
			}
			l := run(t, isoinfo, "-R", "-l", "-i", out)
			for _, name := range []string{"future", "d"} {
				re := regexp.MustCompile(`(?m)^[-d]\S+\s.*\s(\w{3}\s+\d+\s+\d{4})\s+\[[^]]*\]\s\s` + name + `\s*$`)
				m := re.FindStringSubmatch(l)
				if m == nil || !strings.HasSuffix(m[1], "2155") || !strings.HasPrefix(m[1], "Dec 31") {
					t.Errorf("%s: dated %q by isoinfo, want Dec 31 2155:\n%s", name, m, l)
				}
			}
			if m := regexp.MustCompile(`(?m)\s(\d{4})\s+\[[^]]*\]\s\snow\s*$`).FindStringSubmatch(l); m == nil || m[1] != tc.nowYear {
				t.Errorf("the file dated now: %q, want the year %s:\n%s", m, tc.nowYear, l)
			}
			if tc.vol != "" {
				img, err := os.ReadFile(out)
				must(t, err)
				if got := string(img[16*sectorSize+813 : 16*sectorSize+829]); got != tc.vol {
					t.Errorf("volume creation date %q, want %q", got, tc.vol)
				}
			}
		})
	}
}

// TestOutputInsideSource: an image written inside its own source tree
// does not pack what this run and its peers write there (the previous
// image, SHA256SUM, temporary files of live writers), however the output
// path is spelled: the rebuild gives the same image as the first build.
func TestOutputInsideSource(t *testing.T) {
	isoinfo := testenv.Need(t, "isoinfo")[0]
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "keep.txt"), "kept\n", 0o644)
	writeFile(t, filepath.Join(src, "sub", "SHA256SUM"), "not the output's\n", 0o644)
	must(t, os.MkdirAll(filepath.Join(src, "dist"), 0o755))
	link := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(src, link))

	first := buildISO(t, src, filepath.Join(src, "dist", "o.iso"), productOpts())
	live, err := os.Create(filepath.Join(src, "dist", ".tmp-o.iso-live"))
	must(t, err)
	defer live.Close()
	must(t, fsutil.Hold(live))
	for _, out := range []string{filepath.Join(src, "dist", "o.iso"), filepath.Join(link, "dist", "o.iso"), filepath.Join(src, "dist", "..", "dist", "o.iso")} {
		again := buildISO(t, src, out, productOpts())
		if again.SHA256 != first.SHA256 {
			list := run(t, isoinfo, "-R", "-f", "-i", filepath.Join(src, "dist", "o.iso"))
			t.Fatalf("written to %s, the rebuild differs from the first build; it holds:\n%s", out, list)
		}
	}
	list := run(t, isoinfo, "-R", "-f", "-i", filepath.Join(src, "dist", "o.iso"))
	for _, want := range []string{"/keep.txt", "/sub/SHA256SUM", "/dist"} {
		if !strings.Contains(list, want+"\n") {
			t.Errorf("%s missing from the image:\n%s", want, list)
		}
	}
	if strings.Contains(list, "/dist/") {
		t.Errorf("outputs packed into the image:\n%s", list)
	}
}

// TestRockRidgeModes: the Rock Ridge modes are the source's: 0755
// directories and executables, 0644 files, and a 0700 directory kept
// stricter on purpose, as isoinfo and bsdtar read them.
func TestRockRidgeModes(t *testing.T) {
	bins := testenv.Need(t, "isoinfo", "bsdtar")
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "images", "app", "1.0", "manifest.json"), "{}\n", 0o644)
	writeFile(t, filepath.Join(src, "bin", "tool"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(src, "private", "key"), "k\n", 0o644)
	want := map[string]os.FileMode{
		"images": 0o755, "images/app": 0o755, "images/app/1.0": 0o755, "images/app/1.0/manifest.json": 0o644,
		"bin": 0o755, "bin/tool": 0o755, "private": 0o700, "private/key": 0o644,
	}
	for p, m := range want { // whatever the umask
		must(t, os.Chmod(filepath.Join(src, p), m))
	}
	out := filepath.Join(t.TempDir(), "x.iso")
	buildISO(t, src, out, productOpts())
	dir := ""
	got := map[string]string{}
	for _, line := range strings.Split(run(t, bins[0], "-R", "-l", "-i", out), "\n") {
		if d, ok := strings.CutPrefix(line, "Directory listing of /"); ok {
			dir = d
			continue
		}
		if f := strings.Fields(line); len(f) > 0 && len(f[0]) == 10 && f[len(f)-1] != "." && f[len(f)-1] != ".." {
			got["isoinfo "+dir+f[len(f)-1]] = f[0]
		}
	}
	for _, line := range strings.Split(run(t, bins[1], "-tvf", out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] != "." {
			got["bsdtar "+strings.TrimSuffix(f[len(f)-1], "/")] = f[0]
		}
	}
	for p, m := range want {
		typ := "-"
		if fi, _ := os.Stat(filepath.Join(src, p)); fi.IsDir() {
			typ = "d"
		}
		for _, reader := range []string{"isoinfo", "bsdtar"} {
			if s := got[reader+" "+p]; s != typ+m.String()[1:] {
				t.Errorf("%s: %s reads %q, want %s", p, reader, s, typ+m.String()[1:])
			}
		}
	}
}

// TestSHA256State checks that Result.SHA256State is the SHA-256 state
// after exactly the image's bytes, with and without an implanted MD5:
// resumed, it gives the image's digest, and goes on as if it had read the
// image and then more.
func TestSHA256State(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a", "layer"), strings.Repeat("0123456789abcdef", 70<<10), 0o644)
	writeFile(t, filepath.Join(src, "b", "small"), "small\n", 0o644)
	for _, implant := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "x.iso")
		opts := productOpts()
		opts.Epoch = testEpoch
		opts.ImplantMD5 = implant
		res := buildISO(t, src, out, opts)
		img, err := os.ReadFile(out)
		must(t, err)
		if len(res.SHA256State) == 0 {
			t.Fatalf("implant %v: no SHA256State", implant)
		}
		h := sha256.New()
		must(t, h.(encoding.BinaryUnmarshaler).UnmarshalBinary(res.SHA256State))
		if sum := sha256.Sum256(img); hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(sum[:]) || res.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("implant %v: the resumed state does not give the image's digest", implant)
		}
		h.Write([]byte("trailer"))
		if sum := sha256.Sum256(append(img, "trailer"...)); !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Errorf("implant %v: the resumed state does not go on as the image's", implant)
		}
	}
	// Without a checksum, no state either.
	opts := productOpts()
	opts.Epoch = testEpoch
	opts.NoChecksumFile = true
	if res := buildISO(t, src, filepath.Join(t.TempDir(), "y.iso"), opts); res.SHA256State != nil {
		t.Error("NoChecksumFile: a SHA256State")
	}
}
