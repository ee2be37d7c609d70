package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cachedImage serves a fetched image from the cache, so that local builds
// on a pinned base read verified bytes and never the network.
type cachedImage struct {
	res   *Resolved
	cache Cache
}

func (c *cachedImage) RawManifest() ([]byte, error)        { return c.res.Manifest, nil }
func (c *cachedImage) MediaType() (types.MediaType, error) { return c.res.MediaType, nil }
func (c *cachedImage) RawConfigFile() ([]byte, error) {
	var m v1.Manifest
	if err := json.Unmarshal(c.res.Manifest, &m); err != nil {
		return nil, err
	}
	return os.ReadFile(c.cache.Path(m.Config.Digest.String()))
}

func (c *cachedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	var m v1.Manifest
	if err := json.Unmarshal(c.res.Manifest, &m); err != nil {
		return nil, err
	}
	for _, d := range m.Layers {
		if d.Digest == h {
			return &cachedLayer{d: d, cache: c.cache}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no layer %s", c.res.Image.Name, h)
}

type cachedLayer struct {
	d     v1.Descriptor
	cache Cache
}

func (l *cachedLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *cachedLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *cachedLayer) Compressed() (io.ReadCloser, error) {
	return os.Open(l.cache.Path(l.d.Digest.String()))
}

// Image fetches a pinned single-platform image (an index is resolved to
// platform) and returns it as a v1.Image read from the verified cache.
func (f *Fetcher) Image(ctx context.Context, source, digest string, platform v1.Platform) (v1.Image, error) {
	p := platform.OS + "/" + platform.Architecture
	if platform.Variant != "" {
		p += "/" + platform.Variant
	}
	res, err := f.fetch(ctx, Image{Name: source, Version: "base", Source: source, Digest: digest}, []string{p})
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&cachedImage{res: res, cache: f.Cache})
}
