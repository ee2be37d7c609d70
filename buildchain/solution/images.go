package solution

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/imagebuild"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/registrygen"
)

// imageMaker turns image sources into verified cache content.
type imageMaker struct {
	src      *Source
	opts     *BuildOptions
	cache    oci.Cache
	fetcher  *oci.Fetcher
	platform v1.Platform
	binDir   string
	built    map[string]string // "os_arch[_vN]/name" → binary path
}

// resolve produces the dir: content of one image.
func (m *imageMaker) resolve(ctx context.Context, im ImageSource) (*oci.Resolved, error) {
	oim := oci.Image{Name: im.Name, Version: im.Version, Source: im.Source, Digest: im.Digest, Line: im.Line}
	switch im.Kind {
	case FromRegistry:
		return m.fetcher.Fetch(ctx, oim)
	case FromOCILayout:
		img, err := m.fromLayout(im)
		if err != nil {
			return nil, err
		}
		return oci.StoreImage(oim, img, m.cache)
	case FromDockerArchive:
		var tag *name.Tag
		if im.Ref != "" {
			t, err := name.NewTag(im.Ref)
			if err != nil {
				return nil, fmt.Errorf("ref %q: %w", im.Ref, err)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(im.Path, tag)
		if err != nil {
			return nil, fmt.Errorf("docker archive %s: %w", im.Path, err)
		}
		return oci.StoreImage(oim, img, m.cache)
	case FromDir:
		return m.fromDir(oim, im.Path)
	case FromBuild:
		return m.fromBuild(ctx, oim, im.Path)
	}
	return nil, fmt.Errorf("unknown image source kind %q", im.Kind)
}

// fromLayout picks an image from an OCI image layout: the manifest whose
// org.opencontainers.image.ref.name annotation or digest is ref, or the only
// one. An index is resolved to the build platform.
func (m *imageMaker) fromLayout(im ImageSource) (v1.Image, error) {
	p, err := layout.FromPath(im.Path)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", im.Path, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", im.Path, err)
	}
	mf, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: index.json: %w", im.Path, err)
	}
	var pick *v1.Descriptor
	var refs []string
	for i := range mf.Manifests {
		d := &mf.Manifests[i]
		r := d.Annotations["org.opencontainers.image.ref.name"]
		refs = append(refs, r+"@"+d.Digest.String())
		if im.Ref == "" || im.Ref == r || im.Ref == d.Digest.String() {
			if pick != nil {
				if im.Ref == "" {
					return nil, fmt.Errorf("OCI layout %s holds several images (%s): set ref", im.Path, strings.Join(refs, ", "))
				}
				return nil, fmt.Errorf("OCI layout %s: ref %q matches several images", im.Path, im.Ref)
			}
			pick = d
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("OCI layout %s: no image with ref %q (it has %s)", im.Path, im.Ref, strings.Join(refs, ", "))
	}
	if pick.MediaType.IsIndex() {
		child, err := idx.ImageIndex(pick.Digest)
		if err != nil {
			return nil, err
		}
		return m.platformImage(im.Path, child)
	}
	return idx.Image(pick.Digest)
}

func (m *imageMaker) platformImage(where string, idx v1.ImageIndex) (v1.Image, error) {
	mf, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, d := range mf.Manifests {
		if d.Platform != nil {
			have = append(have, d.Platform.String())
			if d.Platform.OS == m.platform.OS && d.Platform.Architecture == m.platform.Architecture {
				return idx.Image(d.Digest)
			}
		}
	}
	return nil, fmt.Errorf("%s: no %s image in the index (it has %s)", where, m.platform.String(), strings.Join(have, ", "))
}

// fromDir copies a skopeo dir: image, verifying every blob into the cache.
func (m *imageMaker) fromDir(oim oci.Image, dir string) (*oci.Resolved, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("dir: image %s: %w", dir, err)
	}
	res := &oci.Resolved{Image: oim, Manifest: raw, Blobs: map[string]int64{}}
	oim.Digest = oci.DigestOf(raw)
	res.Image = oim
	if err := m.dirManifest(dir, raw, res, true); err != nil {
		return nil, fmt.Errorf("dir: image %s: %w", dir, err)
	}
	return res, nil
}

func (m *imageMaker) dirManifest(dir string, raw []byte, res *oci.Resolved, top bool) error {
	mi, err := registrygen.SniffMediaType(raw)
	if err != nil {
		return err
	}
	if top {
		res.MediaType = types.MediaType(mi.MediaType)
	}
	var mf manifest
	if err := json.Unmarshal(raw, &mf); err != nil {
		return err
	}
	if registrygen.IsIndex(mi.MediaType) {
		if !top {
			return fmt.Errorf("nested index")
		}
		res.Children = map[string][]byte{}
		for _, c := range mf.Manifests {
			if !oci.ValidDigest(c.Digest) {
				return fmt.Errorf("child digest %q is invalid", c.Digest)
			}
			file := filepath.Join(dir, strings.TrimPrefix(c.Digest, "sha256:")+".manifest.json")
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if oci.DigestOf(data) != c.Digest {
				return fmt.Errorf("%s does not match its digest %s", file, c.Digest)
			}
			res.Children[c.Digest] = data
			if err := m.dirManifest(dir, data, res, false); err != nil {
				return err
			}
		}
		return nil
	}
	var descs []descriptor
	if mf.Config != nil {
		descs = append(descs, *mf.Config)
	}
	for _, d := range append(descs, mf.Layers...) {
		if !oci.ValidDigest(d.Digest) {
			return fmt.Errorf("blob digest %q is invalid", d.Digest)
		}
		res.Blobs[d.Digest] = d.Size
		if m.cache.Has(d.Digest, d.Size) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, strings.TrimPrefix(d.Digest, "sha256:")))
		if err != nil {
			return err
		}
		_, err = m.cache.Put(d.Digest, d.Size, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
	}
	return nil
}

// fromBuild builds an image from an imagebuild definition, with the
// source's Go binaries.
func (m *imageMaker) fromBuild(ctx context.Context, oim oci.Image, defPath string) (*oci.Resolved, error) {
	def, err := imagebuild.Load(defPath)
	if err != nil {
		return nil, err
	}
	if def.Name != oim.Name {
		return nil, fmt.Errorf("%s defines the image %q, but solution.yaml lists it as %q", defPath, def.Name, oim.Name)
	}
	version, err := def.ResolveVersion(m.src.Version)
	if err != nil {
		return nil, err
	}
	if version != oim.Version {
		return nil, fmt.Errorf("%s gives version %q, but solution.yaml lists %q", defPath, version, oim.Version)
	}
	names, all := def.Binaries()
	if all {
		names = names[:0]
		for n := range m.src.Binaries {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	bins, err := m.buildBinaries(ctx, def.Platform, names)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", defPath, err)
	}
	img, err := imagebuild.Build(ctx, def, imagebuild.Options{
		ProjectRoot:    m.src.Dir,
		Epoch:          m.opts.Epoch,
		ProductVersion: m.src.Version,
		Binaries:       bins,
		BaseFetcher: func(ctx context.Context, source string, digest v1.Hash, platform v1.Platform) (v1.Image, error) {
			return m.fetcher.Image(ctx, source, digest.String(), platform)
		},
	})
	if err != nil {
		return nil, err
	}
	return oci.StoreImage(oim, img, m.cache)
}

// buildBinaries builds the named Go programs of the source as static,
// reproducible binaries for platform, with gobin.
func (m *imageMaker) buildBinaries(ctx context.Context, p v1.Platform, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		pkg, ok := m.src.Binaries[n]
		if !ok {
			return nil, fmt.Errorf("build:%s names no binary of solution.yaml's binaries", n)
		}
		// The variant is part of the target: arm/v6 and arm/v7 binaries differ.
		target := p.OS + "_" + p.Architecture
		if goarm := gobin.GOARM(p.Architecture, p.Variant); goarm != "" {
			target += "_v" + goarm
		}
		key := target + "/" + n
		if b, ok := m.built[key]; ok {
			out[n] = b
			continue
		}
		dst := filepath.Join(m.binDir, target, n)
		err := gobin.BuildPackage(ctx, gobin.Options{ProjectRoot: m.src.Dir, GOOS: p.OS, GOARCH: p.Architecture, Variant: p.Variant}, pkg, dst)
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w", n, err)
		}
		m.built[key] = dst
		out[n] = dst
	}
	return out, nil
}
