// Package dirlayout reads, writes and verifies images in the layout of
// skopeo's dir: transport (containers/image, version 1.1): one directory
// per image, holding
//
//	version                 "Directory Transport Version: 1.1\n"
//	manifest.json           the image manifest or index, as the registry served it
//	<hex>.manifest.json     each platform manifest an index lists (1.1 only)
//	<hex>                   each config and layer blob, named by its sha256
//
// It is the one owner of that format: the file names, the accepted
// versions, the manifest media types, the rule that an index holds image
// manifests only, and the size limit on manifests. The fetcher writes
// through it, and registrygen, the Solution builder and the Solution
// validator read through it, as go-containerregistry's pkg/v1/layout does
// for the OCI image layout.
//
// Readers take an fs.FS, so that a directory (os.DirFS), an ISO image and
// a test's fstest.MapFS are read by the same code.
package dirlayout

import (
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// File names of an image directory.
const (
	ManifestFile = "manifest.json"
	VersionFile  = "version"
	// ChildSuffix ends the name of an index's child manifest,
	// "<hex>.manifest.json", stored beside the index.
	ChildSuffix = ".manifest.json"
)

// Version is the content of the version file that Write puts down.
const Version = "Directory Transport Version: 1.1\n"

// versions are the accepted contents of the version file. A 1.0 directory
// holds no child manifests; it reads like any directory without an index.
var versions = map[string]bool{
	"Directory Transport Version: 1.0\n": true,
	Version:                              true,
}

// ValidVersion reports whether data is an accepted version file.
func ValidVersion(data []byte) bool { return versions[string(data)] }

// MaxManifestSize bounds the manifest files read, as registries bound the
// manifests they accept (distribution: 4 MiB).
const MaxManifestSize = 4 << 20

// maxVersionSize bounds the version file read; the real ones are 34 bytes.
const maxVersionSize = 256

// BlobName is the file name of the blob with digest d.
func BlobName(d string) string { return strings.TrimPrefix(d, "sha256:") }

// ChildName is the file name of the child manifest with digest d.
func ChildName(d string) string { return BlobName(d) + ChildSuffix }

// Kind says what a file name of an image directory is.
type Kind int

const (
	KindOther    Kind = iota // not part of the layout (signatures, litter): ignored
	KindManifest             // manifest.json
	KindVersion              // version
	KindChild                // <hex>.manifest.json
	KindBlob                 // <hex>
)

// Classify says what the entry name of an image directory is and, for a
// child manifest or a blob, the digest its name gives.
func Classify(name string) (Kind, string) {
	switch name {
	case ManifestFile:
		return KindManifest, ""
	case VersionFile:
		return KindVersion, ""
	}
	if h, ok := strings.CutSuffix(name, ChildSuffix); ok && distref.ValidHex(h) {
		return KindChild, "sha256:" + h
	}
	if distref.ValidHex(name) {
		return KindBlob, "sha256:" + name
	}
	return KindOther, ""
}
