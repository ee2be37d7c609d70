package dirlayout

import (
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// The manifest media types a dir: image may hold. A manifest's mediaType
// field is compared against this list, never copied: they are the only
// Content-Type values registrygen ever serves for a manifest.
const (
	MediaTypeDockerManifest     = types.DockerManifestSchema2
	MediaTypeDockerManifestList = types.DockerManifestList
	MediaTypeOCIManifest        = types.OCIManifestSchema1
	MediaTypeOCIIndex           = types.OCIImageIndex
)

// ParsedManifest is a manifest or index, checked.
type ParsedManifest struct {
	MediaType types.MediaType
	// Config and Layers are an image manifest's; Manifests an index's.
	Config    *v1.Descriptor
	Layers    []v1.Descriptor
	Manifests []v1.Descriptor
}

// Blobs returns the config and layers an image directory must hold: every
// one but foreign (non-distributable) layers, which clients fetch from
// their URLs.
func (m *ParsedManifest) Blobs() []v1.Descriptor {
	if m.Config == nil {
		return nil
	}
	out := []v1.Descriptor{*m.Config}
	for _, l := range m.Layers {
		if len(l.URLs) == 0 {
			out = append(out, l)
		}
	}
	return out
}

// descriptor is a descriptor as written, so that a bad digest is reported
// in distref's words rather than refused by v1.Hash's decoder.
type descriptor struct {
	MediaType   types.MediaType   `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	URLs        []string          `json:"urls"`
	Annotations map[string]string `json:"annotations"`
	Platform    *v1.Platform      `json:"platform"`
}

func (d descriptor) v1() (v1.Descriptor, error) {
	if err := distref.CheckDigest(d.Digest); err != nil {
		return v1.Descriptor{}, err
	}
	if d.Size < 0 {
		return v1.Descriptor{}, fmt.Errorf("%s has a negative size %d", d.Digest, d.Size)
	}
	h, err := v1.NewHash(d.Digest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: d.MediaType, Digest: h, Size: d.Size, URLs: d.URLs, Annotations: d.Annotations, Platform: d.Platform}, nil
}

// ParseManifest identifies and checks a manifest or index from its bytes.
// The mediaType field wins when present, but must agree with the
// document's shape; an OCI manifest or index may omit it (image-spec makes
// it optional), and is then recognised by its fields. Keys are matched
// exactly: encoding/json's case-insensitive struct matching would accept
// "MediaType" where clients would not. Every digest must be sha256, every
// size non-negative (a negative size would disable a size check), and a
// digest may not claim two sizes.
func ParseManifest(data []byte) (*ParsedManifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than %d", len(data), MaxManifestSize)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("manifest is not a JSON object: %w", err)
	}
	if doc == nil {
		return nil, errors.New("manifest is null, not a JSON object")
	}
	var version int
	if err := json.Unmarshal(doc["schemaVersion"], &version); err != nil {
		return nil, fmt.Errorf("manifest schemaVersion is %s, want 2", orMissing(doc["schemaVersion"]))
	}
	if version != 2 {
		return nil, fmt.Errorf("manifest schemaVersion is %d: schema version %d is not supported (want 2)", version, version)
	}
	var mt types.MediaType
	if raw, ok := doc["mediaType"]; ok {
		if err := json.Unmarshal(raw, &mt); err != nil {
			return nil, fmt.Errorf("manifest mediaType is %s, not a string", raw)
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
			return nil, errors.New("manifest has no mediaType and neither an index's manifests nor an image's config")
		}
	case MediaTypeDockerManifest, MediaTypeOCIManifest:
		if !isImageShape {
			return nil, fmt.Errorf("manifest says %s but has no config or also has manifests", mt)
		}
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
		if !isIndexShape {
			return nil, fmt.Errorf("manifest says %s but has no manifests or also has config/layers", mt)
		}
	default:
		return nil, fmt.Errorf("manifest mediaType %q is not served (want %s, %s, %s or %s)", mt,
			MediaTypeDockerManifest, MediaTypeOCIManifest, MediaTypeDockerManifestList, MediaTypeOCIIndex)
	}
	m := &ParsedManifest{MediaType: mt}
	if mt.IsIndex() {
		var children []descriptor
		if err := json.Unmarshal(doc["manifests"], &children); err != nil {
			return nil, fmt.Errorf("index manifests: %w", err)
		}
		for i, c := range children {
			d, err := c.v1()
			if err != nil {
				return nil, fmt.Errorf("index manifests[%d]: %w", i, err)
			}
			m.Manifests = append(m.Manifests, d)
		}
		return m, nil
	}
	var config descriptor
	if err := json.Unmarshal(doc["config"], &config); err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	c, err := config.v1()
	if err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	m.Config = &c
	var layers []descriptor
	if raw, ok := doc["layers"]; ok {
		if err := json.Unmarshal(raw, &layers); err != nil {
			return nil, fmt.Errorf("manifest layers: %w", err)
		}
	}
	sizes := map[v1.Hash]int64{c.Digest: c.Size}
	for i, l := range layers {
		d, err := l.v1()
		if err != nil {
			return nil, fmt.Errorf("manifest layers[%d]: %w", i, err)
		}
		if prev, ok := sizes[d.Digest]; ok && prev != d.Size {
			return nil, fmt.Errorf("manifest layers[%d]: blob %s is listed with sizes %d and %d", i, d.Digest, prev, d.Size)
		}
		sizes[d.Digest] = d.Size
		m.Layers = append(m.Layers, d)
	}
	return m, nil
}

// ErrNestedIndex is the one rule on what an index lists: image manifests.
// The dir: layout keeps children beside the top index only, so an index
// inside an index could not be stored.
var ErrNestedIndex = errors.New("an index inside an index is not supported by the dir: layout")

// ParseChild parses a manifest an index lists; it must be an image manifest.
func ParseChild(data []byte) (*ParsedManifest, error) {
	m, err := ParseManifest(data)
	if err != nil {
		return nil, err
	}
	if m.MediaType.IsIndex() {
		return nil, ErrNestedIndex
	}
	return m, nil
}

// AddBlobs adds the blobs of an image manifest to blobs (digest → size),
// refusing a digest that another manifest of the same image listed with
// another size.
func AddBlobs(m *ParsedManifest, blobs map[string]int64) error {
	for _, d := range m.Blobs() {
		ds := d.Digest.String()
		if prev, ok := blobs[ds]; ok && prev != d.Size {
			return fmt.Errorf("blob %s is listed with sizes %d and %d", ds, prev, d.Size)
		}
		blobs[ds] = d.Size
	}
	return nil
}

func orMissing(raw json.RawMessage) string {
	if raw == nil {
		return "missing"
	}
	return string(raw)
}
