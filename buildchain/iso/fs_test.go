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
	if err := fstest.TestFS(im.JolietFS(), "product.txt", "d/e/f.txt", "empty"); err != nil {
		t.Error(err)
	}
}
