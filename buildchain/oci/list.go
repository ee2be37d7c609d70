// Package oci fetches, verifies and lays out the container images of the
// ISO: images.yaml, a content-addressed blob cache, the skopeo dir: layout
// and hard-link de-duplication.
package oci

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// Image is one entry of images.yaml: an upstream image pinned by digest.
type Image struct {
	Name    string // path under images/, e.g. kube-apiserver or library/nginx
	Version string // the tag it is served as
	Source  string // registry/repository it is fetched from
	Digest  string // sha256:<hex> of the manifest or index
	Line    int    // where the entry starts in its file
}

// Ref returns the pinned upstream reference source@digest.
func (im Image) Ref() string { return im.Source + "@" + im.Digest }

// Registry returns the registry host of the source.
func (im Image) Registry() string { r, _, _ := strings.Cut(im.Source, "/"); return r }

// ValidName, ValidTag and ValidDigest are the distribution grammar of
// package distref, re-exported for callers of this package.
var (
	ValidName   = distref.ValidName
	ValidTag    = distref.ValidTag
	ValidDigest = distref.ValidDigest
)

func validSource(s string) error {
	if _, _, ok := distref.SplitSource(s); !ok {
		return fmt.Errorf("source %q is not registry/repository (a registry host such as docker.io/ followed by a valid repository name)", s)
	}
	return nil
}

// ParseList parses images.yaml: a sequence of {name, version, source,
// digest} mappings. Every error names file:line, unknown fields and
// duplicates included, so that a typo in a list of thirty images is found
// at once.
func ParseList(file string, data []byte) ([]Image, error) {
	root, err := yamlstrict.Decode(file, data)
	if err != nil || root == nil {
		return nil, err
	}
	if root.Kind != yaml.SequenceNode {
		return nil, yamlstrict.Errorf(file, root, "want a list of images, got %s", yamlstrict.Describe(root))
	}
	var out []Image
	seen := map[string]int{}
	for _, n := range root.Content {
		errf := func(line int, format string, a ...any) error {
			return yamlstrict.At(file, line, format, a...)
		}
		if n.Kind != yaml.MappingNode {
			return nil, errf(n.Line, "want an image mapping {name, version, source, digest}, got %s", yamlstrict.Describe(n))
		}
		im := Image{Line: n.Line}
		fields := map[string]*string{"name": &im.Name, "version": &im.Version, "source": &im.Source, "digest": &im.Digest}
		got := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			dst, ok := fields[k.Value]
			if !ok {
				return nil, errf(k.Line, "unknown field %q (want name, version, source, digest)", k.Value)
			}
			if got[k.Value] {
				return nil, errf(k.Line, "field %q is given twice", k.Value)
			}
			if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
				return nil, errf(v.Line, "%s: want a string, got %s", k.Value, yamlstrict.Describe(v))
			}
			got[k.Value] = true
			*dst = v.Value
		}
		for _, f := range []string{"name", "version", "source", "digest"} {
			if !got[f] {
				return nil, errf(n.Line, "image is missing %q", f)
			}
		}
		switch {
		case !ValidName(im.Name):
			return nil, errf(n.Line, "name %q is not a valid repository name (lowercase components separated by /)", im.Name)
		case !ValidTag(im.Version):
			return nil, errf(n.Line, "image %s: version %q is not a valid tag", im.Name, im.Version)
		case !ValidDigest(im.Digest):
			return nil, errf(n.Line, "image %s: digest %q is not sha256:<64 lowercase hex>", im.Name, im.Digest)
		}
		if err := validSource(im.Source); err != nil {
			return nil, errf(n.Line, "image %s: %v", im.Name, err)
		}
		key := im.Name + ":" + im.Version
		if prev, dup := seen[key]; dup {
			return nil, errf(n.Line, "image %s is already listed on line %d", key, prev)
		}
		seen[key] = n.Line
		out = append(out, im)
	}
	return out, nil
}
