package oci

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// DirVersion is the content of the version file of skopeo's dir: transport.
const DirVersion = "Directory Transport Version: 1.1\n"

// WriteDir lays res out in skopeo's dir: format at final, atomically:
// manifest.json (the raw bytes, so its digest still holds), version, the
// child manifests of a kept index as <hex>.manifest.json, and every blob as
// <hex>. Blobs are hard links to the cache, so images sharing a layer share
// one file from the start.
func WriteDir(final string, res *Resolved, cache Cache) error {
	tmp, err := fsutil.TempDir(final)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Manifests and the version file go through the cache too, so that
	// every file of every image is a link to one content-addressed copy:
	// the tree is de-duplicated by construction.
	write := func(name string, data []byte) error {
		d := DigestOf(data)
		if !cache.Has(d, int64(len(data))) {
			if err := cache.PutBytes(d, data); err != nil {
				return err
			}
		}
		return fsutil.LinkOrCopy(cache.Path(d), filepath.Join(tmp, name))
	}
	if err := write("manifest.json", res.Manifest); err != nil {
		return err
	}
	if err := write("version", []byte(DirVersion)); err != nil {
		return err
	}
	for _, d := range slices.Sorted(maps.Keys(res.Children)) {
		if err := write(strings.TrimPrefix(d, "sha256:")+".manifest.json", res.Children[d]); err != nil {
			return err
		}
	}
	for _, d := range slices.Sorted(maps.Keys(res.Blobs)) {
		if !cache.Has(d, res.Blobs[d]) {
			return fmt.Errorf("blob %s of %s:%s is not in the cache", d, res.Image.Name, res.Image.Version)
		}
		if err := fsutil.LinkOrCopy(cache.Path(d), filepath.Join(tmp, strings.TrimPrefix(d, "sha256:"))); err != nil {
			return err
		}
	}
	return fsutil.PublishDir(tmp, final)
}

// StoreImage puts a locally built image into the cache, verifying each
// blob as it is written, and returns it as a Resolved ready for WriteDir.
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
	res := &Resolved{Image: im, Manifest: raw, MediaType: mt, Blobs: map[string]int64{}}
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
