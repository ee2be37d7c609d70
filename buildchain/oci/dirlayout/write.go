package dirlayout

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Store is a content-addressed store of verified content, such as the
// fetcher's cache: Write links the directory's files to it.
type Store interface {
	// Has reports whether digest is stored with size bytes (size < 0: any).
	Has(digest string, size int64) bool
	// PutBytes stores data under its digest.
	PutBytes(digest string, data []byte) error
	// Path is where the content of digest is (present or not).
	Path(digest string) string
}

// Write lays c out at final, atomically: manifest.json (the raw bytes, so
// its digest still holds), version, the child manifests of an index as
// <hex>.manifest.json, and every blob as <hex>. Every blob must already
// be in store. All files are hard links to the store, so images sharing a
// layer share one file from the start.
func Write(final string, c *Contents, store Store) error {
	tmp, err := fsutil.TempDir(final)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Manifests and the version file go through the store too, so that
	// every file of every image is a link to one content-addressed copy:
	// the tree is de-duplicated by construction.
	write := func(name string, data []byte) error {
		d := digestOf(data)
		if !store.Has(d, int64(len(data))) {
			if err := store.PutBytes(d, data); err != nil {
				return err
			}
		}
		return fsutil.LinkOrCopy(store.Path(d), filepath.Join(tmp, name))
	}
	if err := write(ManifestFile, c.Manifest); err != nil {
		return err
	}
	if err := write(VersionFile, []byte(Version)); err != nil {
		return err
	}
	for _, d := range slices.Sorted(maps.Keys(c.Children)) {
		if !distref.ValidDigest(d) {
			return fmt.Errorf("child manifest digest %q is not sha256:<64 hex>", d)
		}
		if err := write(ChildName(d), c.Children[d]); err != nil {
			return err
		}
	}
	for _, d := range slices.Sorted(maps.Keys(c.Blobs)) {
		if !distref.ValidDigest(d) {
			return fmt.Errorf("blob digest %q is not sha256:<64 hex>", d)
		}
		if !store.Has(d, c.Blobs[d]) {
			return fmt.Errorf("blob %s is not in the cache", d)
		}
		if err := fsutil.LinkOrCopy(store.Path(d), filepath.Join(tmp, BlobName(d))); err != nil {
			return err
		}
	}
	return fsutil.PublishDir(tmp, final)
}
