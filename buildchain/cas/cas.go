// Package cas is the content-addressed store the image fetcher and the RPM
// fetcher share: Dir/sha256/<hex>, each file named by the sha256 of its
// content. Only content whose digest (and size, when known) was verified
// is ever put in place, so a file there is trusted by its name on later
// runs, and an entry is never replaced once present: image trees and
// repositories hard-link to it.
package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Store is a content-addressed store rooted at Dir.
type Store struct{ Dir string }

// ValidDigest reports whether d is sha256:<64 lowercase hex>, the only
// digests the store names files by.
func ValidDigest(d string) bool { return distref.ValidDigest(d) }

// Digest returns the sha256 digest of data.
func Digest(data []byte) string {
	s := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Path returns where the content of digest lives (present or not).
func (s Store) Path(digest string) string {
	return filepath.Join(s.Dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Has reports whether digest is stored with the expected size (size < 0:
// any size).
func (s Store) Has(digest string, size int64) bool {
	if !ValidDigest(digest) {
		return false
	}
	st, err := os.Stat(s.Path(digest))
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

func checkDigest(digest string) error {
	if !ValidDigest(digest) {
		// A digest from outside names a file: "sha256:../x" must not.
		return fmt.Errorf("%q is not a sha256:<64 lowercase hex> digest", digest)
	}
	return nil
}

// Put streams r into the store under digest, checking both the digest and
// the size (size < 0: unknown). On mismatch nothing is kept.
func (s Store) Put(digest string, size int64, r io.Reader) (int64, error) {
	if err := checkDigest(digest); err != nil {
		return 0, err
	}
	var n int64
	err := fsutil.CreateWith(s.Path(digest), 0o644, func(w io.Writer) error {
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
func (s Store) PutBytes(digest string, data []byte) error {
	_, err := s.Put(digest, int64(len(data)), strings.NewReader(string(data)))
	return err
}

// Adopt moves the complete file at path into the store under digest,
// without copying it: for downloads that were written elsewhere (to
// resume them) and may be large. path must be on the store's file system.
// The file is hashed first; then check, when not nil, may refuse it (a
// signature check). On any refusal path is removed, so that a bad
// download is never retried from. An entry already present is kept.
func (s Store) Adopt(digest string, size int64, path string, check func(path string) error) error {
	if err := checkDigest(digest); err != nil {
		return err
	}
	got, n, err := FileDigest(path)
	if err != nil {
		return err
	}
	if got != digest || (size >= 0 && n != size) {
		os.Remove(path)
		return &DigestError{Want: digest, Got: got, WantSize: size, GotSize: n}
	}
	if check != nil {
		if err := check(path); err != nil {
			os.Remove(path)
			return err
		}
	}
	final := s.Path(digest)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	// A link, not a rename: rename would replace an entry another run
	// put there meanwhile, and others may already link to its inode.
	if err := os.Link(path, final); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Remove(path)
}

// FileDigest returns the sha256 digest and the size of the file at path.
func FileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}
