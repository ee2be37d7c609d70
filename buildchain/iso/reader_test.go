package iso

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// sourceTree writes names that exercise Rock Ridge: long names, UTF-8,
// deep directories, symbolic links (relative, absolute, long), modes.
func sourceTree(t testing.TB) string {
	root := filepath.Join(t.TempDir(), "src")
	write := func(p, content string, mode os.FileMode) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write("product.txt", "NAME=x\n", 0o644)
	write("images/some-image/1.0.0/"+strings.Repeat("ab", 32), "blob", 0o644)
	write("images/some-image/1.0.0/manifest.json", "{}", 0o644)
	write("a/b/c/d/e/f/g/h/i/j/deep.txt", "deep", 0o600)
	write("ünïcödé/名前.yaml", "utf8", 0o644)
	write(strings.Repeat("long-name-", 20)+".txt", "long", 0o755)
	write("empty", "", 0o644)
	if err := os.Symlink("../product.txt", filepath.Join(root, "a", "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	// 202 bytes: two SL component records; genisoimage hangs on targets
	// over 255 bytes (TestReadOurWriter adds one for mkiso).
	if err := os.Symlink(strings.Repeat("x/", 100)+"end", filepath.Join(root, "longlink")); err != nil {
		t.Fatal(err)
	}
	return root
}

type rlisted struct {
	mode   fs.FileMode
	target string
	data   string
}

func listSource(t *testing.T, root string) map[string]rlisted {
	out := map[string]rlisted{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		l := rlisted{mode: fi.Mode() & (fs.ModeType | 0o777)}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l.target, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			l.data = string(b)
		}
		out[filepath.ToSlash(rel)] = l
		return nil
	})
	return out
}

func listImage(t *testing.T, p string) (*Image, map[string]rlisted) {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	im, err := Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return im, listFS(t, im)
}

// listFS lists a file system through io/fs alone, so that an image and a
// directory are read the same way.
func listFS(t *testing.T, fsys fs.FS) map[string]rlisted {
	out := map[string]rlisted{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		l := rlisted{mode: fi.Mode() & (fs.ModeType | 0o777)}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if l.target, err = fs.ReadLink(fsys, p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			l.data = string(b)
		}
		out[p] = l
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffListing(t *testing.T, what string, want, got map[string]rlisted) {
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: %s: got %+v, want %+v", what, k, got[k], want[k])
		}
	}
}

func TestReadOurWriter(t *testing.T) {
	src := sourceTree(t)
	if err := os.Symlink(strings.Repeat("y/", 200)+"end", filepath.Join(src, "verylonglink")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.iso")
	zero := uint32(0)
	if _, err := Write(context.Background(), out, src, Options{VolumeID: "example-solution 1.0.0", RockRidge: true, Joliet: true, JolietLong: true, UID: &zero, GID: &zero, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
		t.Fatal(err)
	}
	im, got := listImage(t, out)
	if !im.RockRidge || !im.Joliet || im.VolumeID != "example-solution 1.0.0" || len(im.Problems) != 0 {
		t.Fatalf("image %+v", im)
	}
	want := listSource(t, src)
	diffListing(t, "mkiso", want, got)
	// A directory through os.Root reads the same through io/fs.
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	diffListing(t, "os.Root", want, listFS(t, root.FS()))
}

func TestReadGenisoimage(t *testing.T) {
	gen := testenv.Need(t, "genisoimage")[0]
	src := sourceTree(t)
	out := filepath.Join(t.TempDir(), "x.iso")
	// -D: no deep-directory relocation, so the tree is comparable as is;
	// relocation is checked below.
	args := []string{"-quiet", "-output", out, "-R", "-J", "-joliet-long", "-l", "-V", "Example 1.0.0", "-iso-level", "3", "-input-charset", "utf-8"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, gen, append(args, "-D", src)...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	im, got := listImage(t, out)
	if !im.RockRidge || !im.Joliet || im.VolumeID != "Example 1.0.0" || len(im.Problems) != 0 {
		t.Fatalf("image %+v", im)
	}
	want := listSource(t, src)
	diffListing(t, "genisoimage -D", want, got)

	// Without -D, genisoimage relocates the 9th level to rr_moved with
	// CL/RE/PL entries: the reader follows CL and hides the relocated copy.
	if b, err := exec.CommandContext(ctx, gen, append(args, "-o", out+"2", src)...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	_, got = listImage(t, out+"2")
	if _, ok := got["rr_moved"]; ok {
		delete(got, "rr_moved") // genisoimage shows the (emptied) directory
	}
	diffListing(t, "genisoimage (relocated)", want, got)
}

func TestNotISO(t *testing.T) {
	for _, data := range [][]byte{nil, make([]byte, 40<<10), bytes.Repeat([]byte("CD001"), 20000)} {
		if _, err := Open(bytes.NewReader(data), int64(len(data))); err == nil {
			t.Errorf("Open of %d bytes accepted", len(data))
		}
	}
}

// TestWriteSeeds regenerates the fuzz seed corpus from real images:
// ISO_WRITE_OPEN_SEEDS=1 go test -run TestWriteOpenSeeds ./buildchain/iso
func TestWriteOpenSeeds(t *testing.T) {
	if os.Getenv("ISO_WRITE_OPEN_SEEDS") == "" {
		t.Skip("set ISO_WRITE_OPEN_SEEDS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	os.MkdirAll(dir, 0o755)
	src := filepath.Join(t.TempDir(), "s")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", strings.Repeat("n", 40)+".yaml"), []byte("x"), 0o644)
	os.Symlink("../etc", filepath.Join(src, "d", "l"))
	out := filepath.Join(t.TempDir(), "s.iso")
	if _, err := Write(context.Background(), out, src, Options{VolumeID: "S 1.0.0", RockRidge: true, Joliet: true, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
		t.Fatal(err)
	}
	seeds := map[string]string{"mkiso": out}
	if gen, err := exec.LookPath("genisoimage"); err == nil {
		g := out + ".gen"
		if b, err := exec.Command(gen, "-quiet", "-o", g, "-R", "-J", "-l", "-V", "S 1.0.0", src).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		seeds["genisoimage"] = g
	}
	for name, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// The seed is the image from its volume descriptors on, without
		// trailing zeros: FuzzOpen puts back the system area, and small
		// inputs keep the fuzzer's minimisation fast.
		data = bytes.TrimRight(data[16*sectorSize:], "\x00")
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzOpen: any input is either refused or read without panicking, with
// every entry's data inside the input and every path clean.
//
// The input is the image from sector 16 (the volume descriptors) on; the
// all-zero system area before it is added here.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("\x01CD001\x01"))
	f.Fuzz(func(t *testing.T, tail []byte) {
		data := append(make([]byte, 16*sectorSize), tail...)
		im, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, fsys := range []*FS{im.FS(), im.JolietFS()} {
			if fsys != nil {
				checkFuzzedFS(t, im, fsys, int64(len(data)))
			}
		}
	})
}

// checkFuzzedFS walks a tree of a fuzzed image: clean unique paths,
// every readable file's data inside the image, distinct contents within
// the MaxExtentReuse budget.
func checkFuzzedFS(t *testing.T, im *Image, fsys *FS, size int64) {
	seen := map[string]bool{}
	served := map[string]bool{}
	var distinct int64
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(p, "/") || strings.Contains(p, "//") || seen[p] || !fs.ValidPath(p) {
			t.Fatalf("bad or duplicate path %q", p)
		}
		seen[p] = true
		fi, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		e := fi.Sys().(*Entry)
		if e.Path() != p || len(p) > MaxPathLen || len(e.Name()) > MaxNameLen {
			t.Fatalf("entry path %q at %q", e.Path(), p)
		}
		if fi.Mode().IsRegular() && e.extents != nil {
			f := &file{f: fsys, e: e}
			n, err := io.Copy(io.Discard, f)
			if err != nil || n != e.Size {
				t.Fatalf("%s: read %d of %d bytes: %v", p, n, e.Size, err)
			}
			if k := e.ExtentKey(); !served[k] {
				served[k] = true
				distinct += e.Size
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if distinct > MaxExtentReuse*size {
		t.Fatalf("%d bytes of distinct content served from a %d-byte image", distinct, size)
	}
}
