package iso

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
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
