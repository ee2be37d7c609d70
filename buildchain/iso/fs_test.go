package iso

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

func TestImageFSConforms(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "product.txt"), "NAME=x\n", 0o644)
	writeFile(t, filepath.Join(src, "d", "e", "f.txt"), "deep", 0o644)
	writeFile(t, filepath.Join(src, "empty"), "", 0o644)
	must(t, os.Symlink("e/f.txt", filepath.Join(src, "d", "rel")))
	links := filepath.Join(t.TempDir(), "links")
	must(t, os.MkdirAll(links, 0o755))
	must(t, os.Symlink("/etc", filepath.Join(links, "abs")))
	must(t, os.Symlink("../..", filepath.Join(links, "up")))
	out := filepath.Join(t.TempDir(), "x.iso")
	zero := uint32(0)
	if _, err := Write(context.Background(), out, src, Options{RockRidge: true, Joliet: true, UID: &zero, GID: &zero, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	must(t, err)
	defer f.Close()
	fi, _ := f.Stat()
	im, err := Open(f, fi.Size())
	must(t, err)
	if err := fstest.TestFS(im, "product.txt", "d/e/f.txt", "d/rel", "empty"); err != nil {
		t.Error(err)
	}
	// Links are followed as os.Root follows them: never out of the tree.
	out2 := filepath.Join(t.TempDir(), "links.iso")
	if _, err := Write(context.Background(), out2, links, Options{RockRidge: true, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
		t.Fatal(err)
	}
	f2, err := os.Open(out2)
	must(t, err)
	defer f2.Close()
	fi2, _ := f2.Stat()
	im2, err := Open(f2, fi2.Size())
	must(t, err)
	for _, p := range []string{"abs/passwd", "abs", "up/x", "up"} {
		if _, err := im2.Stat(p); err == nil {
			t.Errorf("Stat(%q) resolves outside the image", p)
		}
	}
	if target, err := im2.ReadLink("abs"); err != nil || target != "/etc" {
		t.Errorf("ReadLink(abs) = %q, %v", target, err)
	}
	if err := fstest.TestFS(im.JolietFS(), "product.txt", "d/e/f.txt", "empty"); err != nil {
		t.Error(err)
	}
}
