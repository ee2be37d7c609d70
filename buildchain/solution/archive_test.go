package solution

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
)

// TestArchiveFS: the archive, as the validator hands it to dirlayout and
// registrygen, behaves as an io/fs.FS should.
func TestArchiveFS(t *testing.T) {
	a, _, err := openArchive(validTree(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := fstest.TestFS(a, ProductFile, "images/example-solution-ui/1.0.0/manifest.json", OperatorDir+"/operator.yaml"); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveOpenChecksListing: a file replaced after the listing (here by
// a link to another file of the archive, then by a new file) is not read,
// nor is a link or a path the listing does not hold.
func TestArchiveOpenChecksListing(t *testing.T) {
	root := validTree(t)
	a, _, err := openArchive(root)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	p := filepath.Join(root, OperatorDir, "role.yaml")
	// Kept linked elsewhere, so that no file made below gets its inode.
	if err := os.Link(p, filepath.Join(t.TempDir(), "keep")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("operator.yaml", p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(OperatorDir + "/role.yaml"); err == nil || !strings.Contains(err.Error(), "changed since it was listed") {
		t.Errorf("a file swapped for a link: want refused, got %v", err)
	}
	// Renamed over it, as an atomic writer does.
	mustWrite(t, p+".new", []byte("kind: Role\n"))
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(OperatorDir + "/role.yaml"); err == nil || !strings.Contains(err.Error(), "changed since it was listed") {
		t.Errorf("a file replaced: want refused, got %v", err)
	}
	if _, err := a.Open("new.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file created since the listing: want not found, got %v", err)
	}

	root = validTree(t)
	if err := os.Symlink("product.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	a, _, err = openArchive(root)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if _, err := a.Open("link"); err == nil {
		t.Error("a link was opened")
	}
}

// TestArchiveDigestOnce: content several names share (hard links in a
// tree, one extent in an ISO image) is hashed once.
func TestArchiveDigestOnce(t *testing.T) {
	root := validTree(t)
	if err := os.Link(filepath.Join(root, ProductFile), filepath.Join(root, "ui", "copy.txt")); err != nil {
		t.Fatal(err)
	}
	zero := uint32(0)
	image := filepath.Join(t.TempDir(), "solution.iso")
	if _, err := iso.Write(context.Background(), image, root, iso.Options{VolumeID: "example-solution 1.0.0", RockRidge: true, Joliet: true, JolietLong: true,
		UID: &zero, GID: &zero, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, image} {
		a, _, err := openArchive(p)
		if err != nil {
			t.Fatal(err)
		}
		defer a.close()
		d1, err := a.Digest(context.Background(), ProductFile)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := a.Digest(context.Background(), "ui/copy.txt")
		if err != nil {
			t.Fatal(err)
		}
		if d1 != d2 || d1 != oci.DigestOf([]byte(testProduct)) || len(a.hashed) != 1 {
			t.Errorf("%s: digests %s, %s; %d hashed, want one", filepath.Base(p), d1, d2, len(a.hashed))
		}
	}
}
