package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Cache is a content-addressed store of blobs and manifests under
// dir/sha256/<hex>. Only verified content is ever renamed into place, so a
// file there is trusted by its name on later runs.
type Cache struct{ Dir string }

// Path returns where the content of digest lives (present or not).
func (c Cache) Path(digest string) string {
	return filepath.Join(c.Dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Has reports whether digest is cached with the expected size (size < 0:
// any size).
func (c Cache) Has(digest string, size int64) bool {
	st, err := os.Stat(c.Path(digest))
	return err == nil && st.Mode().IsRegular() && (size < 0 || st.Size() == size)
}

// DigestError says that content did not match what it was pinned to.
type DigestError struct {
	Want, Got         string
	WantSize, GotSize int64
}

func (e *DigestError) Error() string {
	if e.WantSize >= 0 && e.GotSize != e.WantSize {
		return fmt.Sprintf("size mismatch: want %d bytes, got %d", e.WantSize, e.GotSize)
	}
	return fmt.Sprintf("digest mismatch: want %s, got %s", e.Want, e.Got)
}

// Put streams r into the cache under digest, checking both the digest and
// the size (size < 0: unknown). On mismatch nothing is kept. An entry is
// never replaced once present: image trees hard-link to it.
func (c Cache) Put(digest string, size int64, r io.Reader) (int64, error) {
	var n int64
	err := fsutil.CreateWith(c.Path(digest), 0o644, func(w io.Writer) error {
		h := sha256.New()
		var limit io.Reader = r
		if size >= 0 {
			// One byte more than expected is enough to see an overlong body.
			limit = io.LimitReader(r, size+1)
		}
		var err error
		n, err = io.Copy(io.MultiWriter(w, h), limit)
		if err != nil {
			return err
		}
		got := "sha256:" + hex.EncodeToString(h.Sum(nil))
		if got != digest || (size >= 0 && n != size) {
			return &DigestError{Want: digest, Got: got, WantSize: size, GotSize: n}
		}
		return nil
	})
	return n, err
}

// PutBytes stores small verified content such as a manifest.
func (c Cache) PutBytes(digest string, data []byte) error {
	_, err := c.Put(digest, int64(len(data)), strings.NewReader(string(data)))
	return err
}

// DigestOf returns the sha256 digest of data.
func DigestOf(data []byte) string {
	s := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(s[:])
}
