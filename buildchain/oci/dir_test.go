package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

// TestWriteDir: an image stored in the cache is laid out as a dir: tree
// that dirlayout reads back, every file a link to the cache; one whose
// blob the cache lacks is refused naming the image, and leaves nothing at
// the destination.
func TestWriteDir(t *testing.T) {
	cache := Cache{Dir: t.TempDir()}
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := StoreImage(Image{Name: "alpha", Version: "1.0"}, img, cache)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "images", "alpha", "1.0")
	if err := WriteDir(dir, res, cache); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := dirlayout.Read(t.Context(), r.FS(), ".", dirlayout.Options{VerifyBlobs: true})
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	if DigestOf(d.Manifest) != res.Image.Digest || len(d.Blobs) != 3 {
		t.Fatalf("read back manifest %s with %d blobs, wrote %s with 3", DigestOf(d.Manifest), len(d.Blobs), res.Image.Digest)
	}
	for b := range d.Blobs {
		in, err1 := os.Stat(filepath.Join(dir, dirlayout.BlobName(b)))
		cached, err2 := os.Stat(cache.Path(b))
		if err1 != nil || err2 != nil || !os.SameFile(in, cached) {
			t.Errorf("blob %s is not a link to the cache (%v, %v)", b, err1, err2)
		}
	}

	missing := *res
	missing.Image.Name = "beta"
	missing.Blobs = map[string]int64{"sha256:" + strings.Repeat("0", 64): 1}
	for k, v := range res.Blobs {
		missing.Blobs[k] = v
	}
	other := filepath.Join(root, "images", "beta", "1.0")
	err = WriteDir(other, &missing, cache)
	if err == nil || !strings.Contains(err.Error(), "image beta:1.0") || !strings.Contains(err.Error(), "not in the cache") {
		t.Fatalf("missing blob: got %v, want an error naming beta:1.0", err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a refused image left %s: %v", other, err)
	}
}
