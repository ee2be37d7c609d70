package iso

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteVerify: Options.Verify sees the complete image, with the bytes
// that are published; an image it rejects is not published, leaves no
// SHA256SUM line and no temporary file, and the image already at the
// output (with its line) stays as it was.
func TestWriteVerify(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a"), "first\n", 0o644)
	dir := t.TempDir()
	out := filepath.Join(dir, "v.iso")
	sums := filepath.Join(dir, "SHA256SUM")

	var seen string
	opts := productOpts()
	opts.Verify = func(ctx context.Context, p string) error {
		if filepath.Dir(p) != dir || p == out {
			t.Errorf("Verify got %s, want a temporary file in %s", p, dir)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if _, err := Open(f, fi.Size()); err != nil {
			return err
		}
		seen, _, err = fileSHA256(ctx, f, fi.Size())
		return err
	}
	res := buildISO(t, src, out, opts)
	if seen != res.SHA256 {
		t.Fatalf("Verify read an image of sha256 %s, the published one is %s", seen, res.SHA256)
	}
	if got, err := LookupSHA256SUM(sums, "v.iso"); err != nil || got != res.SHA256 {
		t.Fatalf("SHA256SUM line for v.iso: %q (%v), want %s", got, err, res.SHA256)
	}
	before, err := os.ReadFile(out)
	must(t, err)

	bad := errors.New("rejected by the test")
	writeFile(t, filepath.Join(src, "a"), "second\n", 0o644)
	opts.Verify = func(context.Context, string) error { return bad }
	opts.Epoch = testEpoch
	for _, name := range []string{"v.iso", "w.iso"} {
		if _, err := Write(context.Background(), filepath.Join(dir, name), src, opts); !errors.Is(err, bad) {
			t.Fatalf("%s: Write returned %v, want the Verify error", name, err)
		}
	}
	if after, err := os.ReadFile(out); err != nil || string(after) != string(before) {
		t.Fatalf("a rejected rebuild changed the published image (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "w.iso")); !os.IsNotExist(err) {
		t.Fatalf("a rejected image was published: %v", err)
	}
	if got, _ := LookupSHA256SUM(sums, "v.iso"); got != res.SHA256 {
		t.Fatalf("SHA256SUM line for v.iso changed to %q", got)
	}
	if got, _ := LookupSHA256SUM(sums, "w.iso"); got != "" {
		t.Fatalf("SHA256SUM records the rejected w.iso: %s", got)
	}
	entries, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "SHA256SUM v.iso" {
		t.Fatalf("left in %s: %v", dir, names)
	}
}
