// Package archive opens a MetalK8s or Solution archive for `archive add`
// and `solution add`: it resolves the path (MetalK8s #3082: iso-manager
// mishandled relative paths), tells an ISO 9660 image from a directory,
// verifies it before anything on it is used (SHA256SUM beside it, its
// detached signature, every file against its signed in-ISO manifest), and
// reads product.txt without mounting, refusing one that does not match
// the volume ID. Package mount then mounts it at MountPoint.
// See docs/installer-archives.md.
package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
)

// MountRoot is where archives are mounted on a node.
const MountRoot = "/srv/scality"

// Kind is what an archive path holds.
type Kind string

const (
	ISOFile     Kind = "iso"       // an ISO 9660 image file
	BlockDevice Kind = "device"    // a CD-ROM (or any block device) holding ISO 9660
	Directory   Kind = "directory" // an archive's tree, used in place
)

// Options say what Open checks.
type Options struct {
	// Keys are the trusted OpenPGP keys. When set, the image's detached
	// signature <iso>.asc and the manifest's MANIFEST.sha256.asc must be
	// there and good; when nil, signatures are not checked.
	Keys *pgp.Keyring
	// SkipFileCheck skips hashing every file against MANIFEST.sha256 (the
	// manifest's signature is still checked): for the benchmark, and for
	// an image whose own signature or SHA256SUM already covers every byte.
	SkipFileCheck bool
	// Now judges key expiry; the current time when zero.
	Now time.Time
}

// Verified says what Open checked, for the log and the report.
type Verified struct {
	SHA256SUM         string // the SHA256SUM file that matched, or ""
	SHA256            string // the image's digest, when it was computed
	Signature         string // signer key ID of <iso>.asc, or ""
	Manifest          bool   // every file matched MANIFEST.sha256
	ManifestSignature string // signer key ID of MANIFEST.sha256.asc, or ""
}

// Archive is an opened, verified archive. Close it.
type Archive struct {
	// Path is absolute and free of symbolic links: what the mount unit
	// names, so it means the same after a reboot and from any directory.
	Path    string
	Kind    Kind
	Image   *iso.Image // nil for a directory
	FS      fs.FS      // the archive's tree, read without mounting
	Product Product
	Checked Verified

	f *os.File
}

// Close releases the image file.
func (a *Archive) Close() error {
	if a.f != nil {
		return a.f.Close()
	}
	return nil
}

// MountPoint is the node path the archive is mounted at: derived from
// product.txt alone, so that it cannot be anything else (MetalK8s #2864).
func (a *Archive) MountPoint() string { return path.Join(MountRoot, a.Product.ID()) }

// Resolve makes path absolute and free of symbolic links.
func Resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("archive %s: %w", p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("archive %w", err)
	}
	return real, nil
}

// Open resolves, identifies and verifies the archive at path, then reads
// its product.txt, in that order: nothing read from the archive is used
// before its checks pass.
func Open(p string, o Options) (*Archive, error) {
	real, err := Resolve(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("archive %w", err)
	}
	a := &Archive{Path: real}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch {
	case fi.IsDir():
		a.Kind = Directory
		a.FS = os.DirFS(real)
	case fi.Mode().IsRegular(), fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0:
		a.Kind = ISOFile
		if !fi.Mode().IsRegular() {
			a.Kind = BlockDevice
		}
		if err := a.openImage(o); err != nil {
			a.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("archive %s is a %s: want an ISO 9660 image, a block device or a directory", real, fi.Mode().Type())
	}
	if err := a.verifyManifest(o); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.readProduct(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// openImage checks the whole image file (digest, signature) in one pass,
// then parses it.
func (a *Archive) openImage(o Options) error {
	f, err := os.Open(a.Path)
	if err != nil {
		return fmt.Errorf("archive %w", err)
	}
	a.f = f
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.Path, err)
	}
	// Identify before the long checks: a file that is not ISO 9660 is
	// named as such, not reported as a checksum or signature problem.
	magic := make([]byte, 6)
	if _, err := f.ReadAt(magic, 16*2048); err != nil || string(magic[1:6]) != "CD001" {
		return fmt.Errorf("archive %s is not an ISO 9660 image (no CD001 volume descriptor at sector 16)", a.Path)
	}
	if err := a.checkFile(o, size); err != nil {
		return err
	}
	im, err := iso.Open(f, size)
	if err != nil {
		return fmt.Errorf("archive %s is not an ISO 9660 image: %w", a.Path, err)
	}
	a.Image, a.FS = im, im.FS()
	return nil
}

// checkFile hashes the image when a SHA256SUM beside it lists it, and
// checks its detached signature when keys are configured, reading it once
// for both. A CD-ROM has nothing beside it: its in-ISO manifest and that
// manifest's signature are what vouch for it.
func (a *Archive) checkFile(o Options, size int64) error {
	if a.Kind == BlockDevice {
		return nil
	}
	sumFile := filepath.Join(filepath.Dir(a.Path), "SHA256SUM")
	want, err := iso.LookupSHA256SUM(sumFile, filepath.Base(a.Path))
	if err != nil {
		return err
	}
	var sig []byte
	if o.Keys != nil {
		if sig, err = readSignature(a.Path + ".asc"); err != nil {
			return err
		}
	}
	if want == "" && sig == nil {
		return nil
	}
	h := sha256.New()
	r := io.TeeReader(io.NewSectionReader(a.f, 0, size), h)
	if sig != nil {
		id, err := o.Keys.Verify(r, sig, o.Now)
		if err != nil {
			return fmt.Errorf("archive %s: bad signature %s.asc: %w", a.Path, a.Path, err)
		}
		a.Checked.Signature = id
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("archive %s: %w", a.Path, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	a.Checked.SHA256 = got
	if want != "" {
		if got != want {
			return fmt.Errorf("archive %s: checksum mismatch: %s says sha256 %s, the file has %s", a.Path, sumFile, want, got)
		}
		a.Checked.SHA256SUM = sumFile
	}
	return nil
}

// readSignature reads an armored (or binary) detached signature; with keys
// configured a missing one is an error, never a skipped check.
func readSignature(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("a signing key is configured but the signature %s is missing", name)
	}
	if err != nil {
		return nil, err
	}
	return dearmor(name, data)
}

func dearmor(name string, data []byte) ([]byte, error) {
	if !bytes.Contains(data, []byte("-----BEGIN PGP")) {
		return data, nil
	}
	b, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", name, err)
	}
	sig, err := io.ReadAll(b.Body)
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", name, err)
	}
	return sig, nil
}

// verifyManifest checks the in-ISO manifest's signature (keys configured)
// and every file against it. Without keys, an archive with no manifest is
// accepted (MetalK8s ISOs before it had none); with keys it is required.
func (a *Archive) verifyManifest(o Options) error {
	data, err := fs.ReadFile(a.FS, isomanifest.Name)
	if errors.Is(err, fs.ErrNotExist) {
		if o.Keys != nil {
			return fmt.Errorf("archive %s: a signing key is configured but the archive has no %s", a.Path, isomanifest.Name)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive %s: %s: %w", a.Path, isomanifest.Name, err)
	}
	if o.Keys != nil {
		raw, err := fs.ReadFile(a.FS, isomanifest.SignatureName)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive %s: a signing key is configured but its %s is missing", a.Path, isomanifest.SignatureName)
		}
		if err != nil {
			return fmt.Errorf("archive %s: %s: %w", a.Path, isomanifest.SignatureName, err)
		}
		sig, err := dearmor(isomanifest.SignatureName, raw)
		if err != nil {
			return fmt.Errorf("archive %s: %w", a.Path, err)
		}
		id, err := o.Keys.Verify(bytes.NewReader(data), sig, o.Now)
		if err != nil {
			return fmt.Errorf("archive %s: bad signature %s of %s: %w", a.Path, isomanifest.SignatureName, isomanifest.Name, err)
		}
		a.Checked.ManifestSignature = id
	}
	if o.SkipFileCheck {
		return nil
	}
	entries, err := isomanifest.Parse(isomanifest.Name, data)
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.Path, err)
	}
	if err := isomanifest.Verify(a.FS, entries); err != nil {
		return fmt.Errorf("archive %s does not match its %s:\n%w", a.Path, isomanifest.Name, err)
	}
	a.Checked.Manifest = true
	return nil
}

// LoadKeys reads trusted public keys (armored or binary key files).
func LoadKeys(files ...string) (*pgp.Keyring, error) {
	k := &pgp.Keyring{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		if err := k.ReadKeys(f, data); err != nil {
			return nil, err
		}
	}
	return k, nil
}
