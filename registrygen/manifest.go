package registrygen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The manifest media types a served tree may hold. They are the only
// Content-Type values the generator ever emits for a manifest: the
// mediaType field of a file is compared against this list, never copied.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
)

// MaxManifestSize bounds the manifest files read, as registries bound the
// manifests they accept (distribution: 4 MiB).
const MaxManifestSize = 4 << 20

// ManifestInfo is what the scanner needs from a manifest file.
type ManifestInfo struct {
	MediaType string
	// Blobs are the digests of the config and layers of an image manifest
	// that must be present in the image directory; Children are the
	// manifests an index lists.
	Blobs    []string
	Children []string
}

// IsIndex reports whether mt is a Docker manifest list or an OCI index.
func IsIndex(mt string) bool { return mt == MediaTypeDockerManifestList || mt == MediaTypeOCIIndex }

type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	URLs      []string `json:"urls"`
}

// SniffMediaType identifies a manifest from its bytes. The mediaType field
// wins when present, but must agree with the document's shape; an OCI
// manifest or index may omit it (image-spec makes it optional), and is
// then recognised by its fields. Keys are matched exactly: encoding/json's
// case-insensitive struct matching would accept "MediaType" where clients
// would not.
func SniffMediaType(data []byte) (ManifestInfo, error) {
	var info ManifestInfo
	if len(data) > MaxManifestSize {
		return info, fmt.Errorf("manifest is %d bytes, more than %d", len(data), MaxManifestSize)
	}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return info, fmt.Errorf("manifest is not a JSON object: %w", err)
	}
	if dec.More() {
		return info, errors.New("manifest has data after its JSON object")
	}
	if doc == nil {
		return info, errors.New("manifest is null, not a JSON object")
	}
	var version int
	if err := json.Unmarshal(doc["schemaVersion"], &version); err != nil || version != 2 {
		return info, fmt.Errorf("manifest schemaVersion is %s, want 2", orMissing(doc["schemaVersion"]))
	}
	var mt string
	if raw, ok := doc["mediaType"]; ok {
		if err := json.Unmarshal(raw, &mt); err != nil {
			return info, fmt.Errorf("manifest mediaType is %s, not a string", raw)
		}
	}
	_, hasManifests := doc["manifests"]
	_, hasConfig := doc["config"]
	_, hasLayers := doc["layers"]
	isIndexShape := hasManifests && !hasConfig && !hasLayers
	isImageShape := hasConfig && !hasManifests
	switch mt {
	case "":
		switch {
		case isIndexShape:
			mt = MediaTypeOCIIndex
		case isImageShape:
			mt = MediaTypeOCIManifest
		default:
			return info, errors.New("manifest has no mediaType and neither an index's manifests nor an image's config")
		}
	case MediaTypeDockerManifest, MediaTypeOCIManifest:
		if !isImageShape {
			return info, fmt.Errorf("manifest says %s but has no config or also has manifests", mt)
		}
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
		if !isIndexShape {
			return info, fmt.Errorf("manifest says %s but has no manifests or also has config/layers", mt)
		}
	default:
		return info, fmt.Errorf("manifest mediaType %q is not served (want %s, %s, %s or %s)", mt,
			MediaTypeDockerManifest, MediaTypeOCIManifest, MediaTypeDockerManifestList, MediaTypeOCIIndex)
	}
	info.MediaType = mt
	if IsIndex(mt) {
		var children []descriptor
		if err := json.Unmarshal(doc["manifests"], &children); err != nil {
			return info, fmt.Errorf("index manifests: %w", err)
		}
		for i, c := range children {
			if err := ValidateDigest(c.Digest); err != nil {
				return info, fmt.Errorf("index manifests[%d]: %w", i, err)
			}
			info.Children = append(info.Children, c.Digest)
		}
		return info, nil
	}
	var config descriptor
	if err := json.Unmarshal(doc["config"], &config); err != nil {
		return info, fmt.Errorf("manifest config: %w", err)
	}
	if err := ValidateDigest(config.Digest); err != nil {
		return info, fmt.Errorf("manifest config: %w", err)
	}
	info.Blobs = append(info.Blobs, config.Digest)
	var layers []descriptor
	if raw, ok := doc["layers"]; ok {
		if err := json.Unmarshal(raw, &layers); err != nil {
			return info, fmt.Errorf("manifest layers: %w", err)
		}
	}
	for i, l := range layers {
		if err := ValidateDigest(l.Digest); err != nil {
			return info, fmt.Errorf("manifest layers[%d]: %w", i, err)
		}
		// A foreign (non-distributable) layer is fetched from its URLs,
		// not from the registry, so it need not be in the directory.
		if len(l.URLs) > 0 {
			continue
		}
		info.Blobs = append(info.Blobs, l.Digest)
	}
	return info, nil
}

func orMissing(raw json.RawMessage) string {
	if raw == nil {
		return "missing"
	}
	return string(raw)
}
