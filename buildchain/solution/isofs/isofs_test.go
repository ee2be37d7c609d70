package isofs

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

	"github.com/metalk8s/buildchain/buildchain/iso"
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

type listed struct {
	mode   fs.FileMode
	target string
	data   string
}

func listSource(t *testing.T, root string) map[string]listed {
	out := map[string]listed{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		l := listed{mode: fi.Mode() & (fs.ModeType | 0o777)}
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

func listImage(t *testing.T, p string) (*Image, map[string]listed) {
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
	out := map[string]listed{}
	for _, e := range im.Entries {
		l := listed{mode: e.Mode & (fs.ModeType | 0o777), target: e.Target}
		if e.Mode.IsRegular() {
			r, err := im.Open(e)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			l.data = string(b)
		}
		out[e.Path] = l
	}
	return im, out
}

func diff(t *testing.T, what string, want, got map[string]listed) {
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
	if _, err := iso.Write(context.Background(), out, src, iso.Options{VolumeID: "example-solution 1.0.0", RockRidge: true, Joliet: true, JolietLong: true, UID: &zero, GID: &zero, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
		t.Fatal(err)
	}
	im, got := listImage(t, out)
	if !im.RockRidge || !im.Joliet || im.VolumeID != "example-solution 1.0.0" || len(im.Problems) != 0 {
		t.Fatalf("image %+v", im)
	}
	diff(t, "mkiso", listSource(t, src), got)
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
	diff(t, "genisoimage -D", want, got)

	// Without -D, genisoimage relocates the 9th level to rr_moved with
	// CL/RE/PL entries: the reader follows CL and hides the relocated copy.
	if b, err := exec.CommandContext(ctx, gen, append(args, "-o", out+"2", src)...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	_, got = listImage(t, out+"2")
	if _, ok := got["rr_moved"]; ok {
		delete(got, "rr_moved") // genisoimage shows the (emptied) directory
	}
	diff(t, "genisoimage (relocated)", want, got)
}

func TestNotISO(t *testing.T) {
	for _, data := range [][]byte{nil, make([]byte, 40<<10), bytes.Repeat([]byte("CD001"), 20000)} {
		if _, err := Open(bytes.NewReader(data), int64(len(data))); err == nil {
			t.Errorf("Open of %d bytes accepted", len(data))
		}
	}
}

// TestWriteSeeds regenerates the fuzz seed corpus from real images:
// SOLUTION_WRITE_SEEDS=1 go test -run TestWriteSeeds ./buildchain/solution/isofs
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("SOLUTION_WRITE_SEEDS") == "" {
		t.Skip("set SOLUTION_WRITE_SEEDS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	os.MkdirAll(dir, 0o755)
	src := filepath.Join(t.TempDir(), "s")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", strings.Repeat("n", 40)+".yaml"), []byte("x"), 0o644)
	os.Symlink("../etc", filepath.Join(src, "d", "l"))
	out := filepath.Join(t.TempDir(), "s.iso")
	if _, err := iso.Write(context.Background(), out, src, iso.Options{VolumeID: "S 1.0.0", RockRidge: true, Joliet: true, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
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
		data = bytes.TrimRight(data[16*SectorSize:], "\x00")
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
		data := append(make([]byte, 16*SectorSize), tail...)
		im, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range im.Entries {
			if e.Path == "" || strings.HasPrefix(e.Path, "/") || strings.Contains(e.Path, "//") || seen[e.Path] {
				t.Fatalf("bad or duplicate path %q", e.Path)
			}
			for _, c := range strings.Split(e.Path, "/") {
				if c == "." || c == ".." || c == "" {
					t.Fatalf("path %q has component %q", e.Path, c)
				}
			}
			seen[e.Path] = true
			if e.Mode.IsRegular() {
				r, err := im.Open(e)
				if err != nil {
					continue
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil || n != e.Size {
					t.Fatalf("%s: read %d of %d bytes: %v", e.Path, n, e.Size, err)
				}
			}
		}
	})
}
