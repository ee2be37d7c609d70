package oci

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

// StoreImage puts a locally built image into the cache, verifying each
// blob as it is written, and returns it as a Resolved ready for dirlayout.Write.
func StoreImage(im Image, img v1.Image, cache Cache) (*Resolved, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	im.Digest = DigestOf(raw)
	res := &Resolved{Image: im, Contents: dirlayout.Contents{Manifest: raw, MediaType: mt, Blobs: map[string]int64{}}}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cd := DigestOf(cfg)
	if !cache.Has(cd, int64(len(cfg))) {
		if err := cache.PutBytes(cd, cfg); err != nil {
			return nil, fmt.Errorf("image %s config: %w", im.Name, err)
		}
	}
	res.Blobs[cd] = int64(len(cfg))
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		res.Blobs[d.String()] = size
		if cache.Has(d.String(), size) {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		_, err = cache.Put(d.String(), size, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("image %s layer %s: %w", im.Name, d, err)
		}
	}
	return res, nil
}
