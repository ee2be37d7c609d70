// Package iso writes ISO 9660 images (ECMA-119 level 3) with Rock Ridge
// (RRIP 1.12 over SUSP 1.12) and Joliet, the format MetalK8s and Solution
// archives use (docs chapter 12.2.1).
//
// The writer plans the whole layout from stat data first, so the output is
// produced in a single sequential pass: descriptors, path tables, directory
// extents, Rock Ridge continuation areas, then file data. Files with the same
// content are stored once; to find them without reading every file twice,
// only files whose size collides with another file's size are examined
// before writing (small ones hashed, big ones compared byte for byte when
// their heads match). See docs/iso.md for the layout and the trade-offs.
//
// Output is reproducible: walks are sorted, inode numbers are replaced by
// serial numbers assigned in walk order, and every date comes from the epoch
// (Options.Epoch or SOURCE_DATE_EPOCH) or from file mtimes clamped to it.
package iso

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/metalk8s/buildchain/buildchain/config"
)

// Options controls an image. The zero value is a plain ISO 9660 image with a
// default volume ID; MetalK8s sets VolumeID, RockRidge, Joliet, JolietLong
// and an owner override.
type Options struct {
	// VolumeID is the PVD volume identifier, e.g. "MetalK8s 2.0.0": at most
	// 32 printable ASCII characters among the ECMA-119 a-characters plus
	// lowercase letters (as mkisofs allows). Anything else is an error, never
	// silently cut. The Joliet copy holds only 16 UCS-2 characters, so it
	// gets the first 16 (what genisoimage and xorriso do too).
	VolumeID string
	// SystemID defaults to "LINUX"; at most 32 characters, same alphabet.
	SystemID string
	// ApplicationID, PublisherID and PreparerID: at most 128 characters.
	ApplicationID string
	PublisherID   string
	PreparerID    string

	// RockRidge adds RRIP 1.12 records: POSIX modes, owners, link counts,
	// serial numbers, long UTF-8 names, symlinks and dates.
	RockRidge bool
	// Joliet adds a supplementary volume with UCS-2 names (64 characters,
	// or 103 with JolietLong; longer names are truncated like genisoimage).
	Joliet     bool
	JolietLong bool

	// UID and GID, when set, replace every file's owner (mkisofs -uid/-gid).
	UID, GID *uint32

	// Epoch is the build date. When zero, SOURCE_DATE_EPOCH is used if set;
	// otherwise the current time is used and mtimes are not clamped (the
	// image is then not reproducible).
	Epoch time.Time

	// ImplantMD5 embeds an isomd5sum checksum in the PVD application-use
	// area, as implantisomd5 does, so checkisomd5 can verify the media. It
	// needs a seekable output (WriteFile does that).
	ImplantMD5 bool
	// NoChecksumFile disables the SHA-256 digest and the SHA256SUM file
	// WriteFile maintains next to the image.
	NoChecksumFile bool

	// Verify, when set, is run by WriteFile on the complete temporary
	// image (its path) before it is renamed into place: an error keeps
	// the image, and its SHA256SUM line, from being published. The
	// Solution build validates the archive it wrote this way.
	Verify func(ctx context.Context, path string) error
}

// ProductOptions are the options of a MetalK8s ISO or a Solution archive
// (12.2.1): Rock Ridge, Joliet with long names, every file owned by 0:0,
// every date from epoch. Callers add what is theirs (ImplantMD5, Verify).
func ProductOptions(volumeID string, epoch time.Time) Options {
	return Options{
		VolumeID:   volumeID,
		RockRidge:  true,
		Joliet:     true,
		JolietLong: true,
		UID:        new(uint32),
		GID:        new(uint32),
		Epoch:      epoch,
	}
}

// Result describes a written image.
type Result struct {
	Size int64 // bytes
	// SHA256 is the hex digest of the complete image; empty with
	// NoChecksumFile, and when Builder.Write implants an MD5 (the patch
	// changes the digest after the bytes went by).
	SHA256 string
	// SHA256State is the SHA-256 state after the image's bytes and before
	// the digest's final padding (crypto/sha256's MarshalBinary), set
	// with SHA256: a signer that hashes the image with SHA-256 resumes
	// from it instead of reading the image again (isosign.SignSHA256).
	SHA256State []byte
	// MD5 is the implanted isomd5sum digest, if ImplantMD5 was set.
	MD5 string
	// Files is the number of regular files; Extents the number of distinct
	// data extents (Files minus hard links and identical contents).
	Files, Extents int
	// SharedBytes is the file data that sharing saved.
	SharedBytes int64
}

// Write builds an image of the tree at root into outPath, atomically: the
// image is written to a temporary file in the same directory, checked by
// opts.Verify if set, and renamed at the end, and a SHA256SUM line is
// recorded next to it (see Builder.WriteFile). It is how both the MetalK8s
// ISO and Solution archives are published.
func Write(ctx context.Context, outPath, root string, opts Options) (*Result, error) {
	b, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := b.AddTree("", root); err != nil {
		return nil, err
	}
	return b.WriteFile(ctx, outPath)
}

const (
	sectorSize = 2048
	// maxExtent is the largest extent of a multi-extent file: the 32-bit
	// length field rounded down to whole sectors, as mkisofs does.
	maxExtent = 0xFFFFF800
	// padSectors of zeros end the image: implantisomd5 leaves the last 15
	// sectors out of its digest, so they must not hold data.
	padSectors = 16
	// maxDirs is the number of directories path tables can number.
	maxDirs = 65535
)

// resolveEpoch returns the build date, clamped to what the volume
// descriptor's dates can hold (see maxVolumeDate), and whether mtimes are
// clamped to it.
func resolveEpoch(opts *Options) (epoch time.Time, clamp bool, err error) {
	epoch, clamp, err = rawEpoch(opts)
	if epoch.After(maxVolumeDate) {
		epoch = maxVolumeDate
	}
	return epoch, clamp, err
}

func rawEpoch(opts *Options) (epoch time.Time, clamp bool, err error) {
	if !opts.Epoch.IsZero() {
		return opts.Epoch.UTC(), true, nil
	}
	if e, ok, err := config.EpochFromEnv(); err != nil {
		return time.Time{}, false, fmt.Errorf("iso: %w", err)
	} else if ok {
		return e, true, nil
	}
	return time.Now().UTC().Truncate(time.Second), false, nil
}

// isIDChar reports whether c may appear in a volume, system or application
// identifier: ECMA-119 a-characters (7.4.1), plus lowercase letters that
// mkisofs lets through and product names use ("example-solution 1.0.0").
func isIDChar(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte(" _!\"%&'()*+,-./:;<=>?", c) >= 0
}

func validateID(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("iso: %s %q is %d characters long; ISO 9660 holds at most %d", field, v, len(v), max)
	}
	for i := 0; i < len(v); i++ {
		if !isIDChar(v[i]) {
			return fmt.Errorf("iso: %s %q: character %q at offset %d is not allowed (use A-Z, a-z, 0-9, space and !\"%%&'()*+,-./:;<=>?_)", field, v, v[i], i)
		}
	}
	return nil
}

func (o *Options) validate() error {
	if o.VolumeID == "" {
		o.VolumeID = "CDROM"
	}
	if o.SystemID == "" {
		o.SystemID = "LINUX"
	}
	if o.ApplicationID == "" {
		o.ApplicationID = "METALK8S BUILDCHAIN MKISO"
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"volume ID", o.VolumeID, 32},
		{"system ID", o.SystemID, 32},
		{"application ID", o.ApplicationID, 128},
		{"publisher ID", o.PublisherID, 128},
		{"data preparer ID", o.PreparerID, 128},
	} {
		if err := validateID(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	if o.JolietLong && !o.Joliet {
		o.Joliet = true
	}
	return nil
}
