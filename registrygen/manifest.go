package registrygen

import "github.com/metalk8s/buildchain/buildchain/oci/dirlayout"

// The manifest media types a served tree may hold, as dirlayout accepts
// them. They are the only Content-Type values the generator ever emits for
// a manifest: a file's mediaType is checked by dirlayout, never copied.
const (
	MediaTypeDockerManifest     = string(dirlayout.MediaTypeDockerManifest)
	MediaTypeDockerManifestList = string(dirlayout.MediaTypeDockerManifestList)
	MediaTypeOCIManifest        = string(dirlayout.MediaTypeOCIManifest)
	MediaTypeOCIIndex           = string(dirlayout.MediaTypeOCIIndex)
)
