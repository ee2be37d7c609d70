package iso

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// TestReproducible: the same tree and epoch give the same bytes, whatever
// the inode numbers, the walk order of the file system or the mtimes
// after the epoch.
func TestReproducible(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	makeCorpus(t, a, corpusOpts{many: 200, deep: true})
	makeCorpus(t, b, corpusOpts{many: 200, deep: true})
	// Mtimes after the epoch are clamped to it.
	future := time.Now().Add(time.Hour)
	must(t, os.Chtimes(filepath.Join(b, "PRODUCT.TXT"), future, future))
	must(t, os.Chtimes(filepath.Join(a, "PRODUCT.TXT"), testEpoch.Add(time.Minute), testEpoch.Add(time.Minute)))
	out := t.TempDir()
	opts := productOpts()
	opts.ImplantMD5 = true
	ra := buildISO(t, a, filepath.Join(out, "a.iso"), opts)
	rb := buildISO(t, b, filepath.Join(out, "b.iso"), opts)
	ia, _ := os.ReadFile(filepath.Join(out, "a.iso"))
	ib, _ := os.ReadFile(filepath.Join(out, "b.iso"))
	if !bytes.Equal(ia, ib) || ra.SHA256 != rb.SHA256 {
		t.Fatalf("two builds of the same tree differ (%s vs %s)", ra.SHA256, rb.SHA256)
	}
	// SOURCE_DATE_EPOCH is honoured when no explicit epoch is given.
	t.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(testEpoch.Unix(), 10))
	opts.Epoch = time.Time{}
	rc, err := Write(context.Background(), filepath.Join(out, "c.iso"), a, opts)
	must(t, err)
	if rc.SHA256 != ra.SHA256 {
		t.Fatalf("SOURCE_DATE_EPOCH build differs from the Options.Epoch build")
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUM"))
	must(t, err)
	want := ra.SHA256 + "  a.iso\n" + rb.SHA256 + "  b.iso\n" + rc.SHA256 + "  c.iso\n"
	if string(sums) != want {
		t.Fatalf("SHA256SUM:\n%s\nwant:\n%s", sums, want)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad SOURCE_DATE_EPOCH accepted: %v", err)
	}
}

func TestUpdateSHA256SUM(t *testing.T) {
	f := filepath.Join(t.TempDir(), "SHA256SUM")
	must(t, os.WriteFile(f, []byte("aaaa  other.iso\nbbbb *metalk8s.iso\n"), 0o644))
	must(t, UpdateSHA256SUM(f, "metalk8s.iso", "cccc"))
	got, _ := os.ReadFile(f)
	if string(got) != "aaaa  other.iso\ncccc  metalk8s.iso\n" {
		t.Fatalf("SHA256SUM = %q", got)
	}
}

func TestLookupSHA256SUM(t *testing.T) {
	f := filepath.Join(t.TempDir(), "SHA256SUM")
	if sum, err := LookupSHA256SUM(f, "a.iso"); sum != "" || err != nil {
		t.Fatalf("missing file: %q, %v", sum, err)
	}
	must(t, os.WriteFile(f, []byte("aaaa  a.iso\nbbbb *b.iso\ncccc  xa.iso\n"), 0o644))
	must(t, UpdateSHA256SUM(f, "new\nline.iso", "dddd"))
	for name, want := range map[string]string{"a.iso": "aaaa", "b.iso": "bbbb", "new\nline.iso": "dddd", "c.iso": "", "iso": ""} {
		if sum, err := LookupSHA256SUM(f, name); sum != want || err != nil {
			t.Errorf("LookupSHA256SUM(%q) = %q, %v; want %q", name, sum, err, want)
		}
	}
}

func TestIdentifiers(t *testing.T) {
	for _, id := range []string{"MetalK8s 2.0.0", "example-solution 1.0.0", "CDROM", strings.Repeat("A", 32)} {
		if _, err := New(Options{VolumeID: id}); err != nil {
			t.Errorf("volume ID %q rejected: %v", id, err)
		}
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{VolumeID: strings.Repeat("A", 33)}, "at most 32"},
		{Options{VolumeID: "café 1.0"}, "not allowed"},
		{Options{VolumeID: "tab\there"}, "not allowed"},
		{Options{VolumeID: "a@b"}, "not allowed"},
		{Options{SystemID: strings.Repeat("S", 33)}, "system ID"},
		{Options{ApplicationID: strings.Repeat("x", 129)}, "application ID"},
		{Options{ApplicationID: "über"}, "application ID"},
	} {
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.opts, err, tc.want)
		}
	}
}

// TestBadInput: special files and unreadable files are errors naming the
// path, and nothing is left at the output path.
func TestBadInput(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string) string{
		"fifo": func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "pipe")
			must(t, syscall.Mkfifo(p, 0o644))
			return p
		},
		"socket": func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "sock")
			l, err := net.Listen("unix", p)
			must(t, err)
			t.Cleanup(func() { l.Close() })
			return p
		},
		"device": func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "null")
			if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("mknod needs root: %v", err)
			}
			return p
		},
		"unreadable": func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "secret")
			writeFile(t, p, "x", 0o000)
			old := openFile
			openFile = func(name string) (*source, error) {
				if name == p { // root could read it anyway
					return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EACCES}
				}
				return old(name)
			}
			t.Cleanup(func() { openFile = old })
			return p
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			writeFile(t, filepath.Join(src, "ok.txt"), "fine\n", 0o644)
			bad := mk(t, src)
			outDir := t.TempDir()
			out := filepath.Join(outDir, "x.iso")
			_, err := Write(context.Background(), out, src, productOpts())
			if err == nil || !strings.Contains(err.Error(), bad) {
				t.Fatalf("error %v does not name %s", err, bad)
			}
			entries, _ := os.ReadDir(outDir)
			if len(entries) != 0 {
				t.Fatalf("output directory not empty after an error: %v", entries)
			}
		})
	}
	t.Run("symlink loop as root", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.Symlink("b", filepath.Join(dir, "a")))
		must(t, os.Symlink("a", filepath.Join(dir, "b")))
		_, err := Write(context.Background(), filepath.Join(dir, "x.iso"), filepath.Join(dir, "a"), productOpts())
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a")) || !errors.Is(err, syscall.ELOOP) {
			t.Fatalf("error %v, want ELOOP naming the path", err)
		}
	})
}

// TestCancel: an interrupted build leaves nothing behind.
func TestCancel(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a"), strings.Repeat("a", 3<<20), 0o644)
	outDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, filepath.Join(outDir, "x.iso"), src, productOpts()); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestFailWhileWriting: a build cancelled halfway, or failing on its
// fifth source, with the digests reading the output back, stops every
// goroutine it started and leaves nothing behind, in both digest modes.
func TestFailWhileWriting(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for i := range 8 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), strings.Repeat(fmt.Sprint(i), (2+i)<<20), 0o644)
	}
	defer func(open func(string) (*source, error)) { openFile = open }(openFile)
	errBroken := errors.New("broken source")
	for _, implant := range []bool{false, true} {
		for _, cancelled := range []bool{false, true} {
			outDir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			opened := 0
			openFile = func(name string) (*source, error) {
				if opened++; opened == 5 {
					if !cancelled {
						return nil, errBroken
					}
					cancel()
				}
				return openSource(name)
			}
			before := runtime.NumGoroutine()
			opts := productOpts()
			opts.ImplantMD5 = implant
			_, err := Write(ctx, filepath.Join(outDir, "x.iso"), src, opts)
			want := errBroken
			if cancelled {
				want = context.Canceled
			}
			if !errors.Is(err, want) {
				t.Fatalf("implant %v: error %v, want %v", implant, err, want)
			}
			if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
				t.Fatalf("implant %v: left behind: %v", implant, entries)
			}
			for i := 0; runtime.NumGoroutine() > before; i++ {
				if i == 100 {
					t.Fatalf("implant %v, cancelled %v: %d goroutines left running, %d before", implant, cancelled, runtime.NumGoroutine(), before)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}
	}
}

// TestJolietCollisions: names equal in their first 103 characters stay
// distinct, in Joliet as in the primary tree.
func TestJolietCollisions(t *testing.T) {
	bin := testenv.Need(t, "isoinfo")[0]
	src := filepath.Join(t.TempDir(), "src")
	long := nameOf(110, "")
	writeFile(t, filepath.Join(src, long+"-one"), "1", 0o644)
	writeFile(t, filepath.Join(src, long+"-two"), "2", 0o644)
	out := filepath.Join(t.TempDir(), "x.iso")
	buildISO(t, src, out, productOpts())
	jl := parseIsoinfo(t, run(t, bin, "-J", "-l", "-i", out))
	if _, ok := jl[long[:103]]; !ok || len(jl) != 2 {
		t.Fatalf("Joliet names %v", jl)
	}
	if _, ok := jl[long[:100]+"000"]; !ok {
		t.Fatalf("second name not made unique with a counter: %v", jl)
	}
}

// TestBuilderFileList assembles an image from several sources.
func TestBuilderFileList(t *testing.T) {
	bin := testenv.Need(t, "isoinfo")[0]
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "A\n", 0o644)
	writeFile(t, filepath.Join(dir, "tree", "b.txt"), "B\n", 0o600)
	b, err := New(productOpts())
	must(t, err)
	must(t, b.Add("docs/readme.txt", filepath.Join(dir, "a.txt")))
	must(t, b.AddTree("sub", filepath.Join(dir, "tree")))
	if err := b.Add("docs/readme.txt", filepath.Join(dir, "a.txt")); err == nil {
		t.Fatal("duplicate path accepted")
	}
	var buf bytes.Buffer
	res, err := b.Write(context.Background(), &buf)
	must(t, err)
	if int64(buf.Len()) != res.Size {
		t.Fatalf("wrote %d bytes, result says %d", buf.Len(), res.Size)
	}
	out := filepath.Join(dir, "x.iso")
	must(t, os.WriteFile(out, buf.Bytes(), 0o644))
	l := parseIsoinfo(t, run(t, bin, "-R", "-l", "-i", out))
	for _, p := range []string{"docs", "docs/readme.txt", "sub", "sub/b.txt"} {
		if _, ok := l[p]; !ok {
			t.Errorf("missing %s in %v", p, l)
		}
	}
	if l["sub/b.txt"].perm != "-rw-------" {
		t.Errorf("sub/b.txt mode %s", l["sub/b.txt"].perm)
	}
	if _, err := b.Write(context.Background(), io.Discard); err == nil {
		t.Error("second Write accepted")
	}
}

// TestHugeFile stores a sparse 4.5 GiB file as a multi-extent file.
func TestHugeFile(t *testing.T) {
	testenv.Short(t, "writes a sparse 4.5 GiB image")
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(src, 0o755))
	huge := filepath.Join(src, "huge.bin")
	const size = 4608 << 20
	f, err := os.Create(huge)
	must(t, err)
	marks := map[int64]string{0: "START", maxExtent - 3: "ACROSS", size - 4: "END!"}
	for off, m := range marks {
		_, err := f.WriteAt([]byte(m), off)
		must(t, err)
	}
	must(t, f.Truncate(size))
	must(t, f.Close())
	writeFile(t, filepath.Join(src, "after.txt"), "after\n", 0o644)
	out := filepath.Join(t.TempDir(), "huge.iso")
	opts := productOpts()
	opts.NoChecksumFile = true // hashing 4.5 GiB of zeros proves nothing
	buildISO(t, src, out, opts)

	img, err := os.Open(out)
	must(t, err)
	defer img.Close()
	fi, err := img.Stat()
	must(t, err)
	// The reader reads the metadata only: the file's data is not needed
	// for the structure. A multi-extent file is one entry; without the
	// not-final flag on its first record, it would be two records with one
	// name, which the reader reports.
	im, err := Open(img, fi.Size())
	must(t, err)
	if len(im.Problems) != 0 {
		t.Fatalf("problems: %v", im.Problems)
	}
	fi2, err := im.Lstat("huge.bin")
	must(t, err)
	rs := fi2.Sys().(*Entry).Extents()
	if len(rs) != 2 || rs[0].Size != maxExtent || int64(rs[0].Size)+int64(rs[1].Size) != size || fi2.Size() != size {
		t.Fatalf("multi-extent records: %+v", rs)
	}
	if rs[1].LBA != rs[0].LBA+maxExtent/sectorSize {
		t.Fatalf("extents not contiguous: %+v", rs)
	}
	for off, m := range marks {
		got := make([]byte, len(m))
		_, err := img.ReadAt(got, int64(rs[0].LBA)*sectorSize+off)
		must(t, err)
		if string(got) != m {
			t.Errorf("at %d: %q, want %q", off, got, m)
		}
	}
	total := strconv.FormatInt(size, 10)
	t.Run("xorriso", func(t *testing.T) {
		bin := testenv.Need(t, "xorriso")[0]
		if out := run(t, bin, "-indev", out, "-find", "/huge.bin", "-exec", "lsdl"); !strings.Contains(out, " "+total+" ") {
			t.Errorf("xorriso lsdl: %s", out)
		}
	})
	t.Run("bsdtar", func(t *testing.T) {
		bin := testenv.Need(t, "bsdtar")[0]
		if out := run(t, bin, "-tvf", out); !regexp.MustCompile(` ` + total + ` .*huge\.bin`).MatchString(out) {
			t.Errorf("bsdtar -tv: %s", out)
		}
		dst := t.TempDir()
		run(t, bin, "-xf", out, "-C", dst, "after.txt")
		if b, _ := os.ReadFile(filepath.Join(dst, "after.txt")); string(b) != "after\n" {
			t.Errorf("after.txt = %q", b)
		}
	})
	t.Run("7z", func(t *testing.T) {
		bin := testenv.Need(t, "7z")[0]
		if out := run(t, bin, "l", out); !regexp.MustCompile(total + `\s+` + total + `\s+huge\.bin`).MatchString(out) {
			t.Errorf("7z l: %s", out)
		}
	})
	t.Run("isoinfo", func(t *testing.T) {
		// isoinfo lists each extent of a multi-extent file on its own line.
		bin := testenv.Need(t, "isoinfo")[0]
		out := run(t, bin, "-R", "-l", "-i", out)
		sizes := regexp.MustCompile(`(\d+) \w+ +\d+ \d+ \[ *\d+ (?:\w+\]|FFFF) +huge\.bin`).FindAllStringSubmatch(out, -1)
		var sum int64
		for _, m := range sizes {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			sum += n
		}
		if len(sizes) != 2 || sum != size {
			t.Errorf("isoinfo -R -l: %d extents totalling %d:\n%s", len(sizes), sum, out)
		}
	})
}
