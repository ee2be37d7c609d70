package solution

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/imagebuild"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
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
		return m.fromDir(ctx, oim, im.Path)
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

// fromDir copies a skopeo dir: image, read and checked by dirlayout,
// verifying every blob on its way into the cache.
func (m *imageMaker) fromDir(ctx context.Context, oim oci.Image, dir string) (*oci.Resolved, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("dir: image %s: %w", dir, err)
	}
	defer root.Close()
	d, err := dirlayout.Read(ctx, root.FS(), ".", dirlayout.Options{})
	if err != nil {
		return nil, fmt.Errorf("dir: image %s: %w", dir, err)
	}
	oim.Digest = oci.DigestOf(d.Manifest)
	for _, b := range slices.Sorted(maps.Keys(d.Blobs)) {
		if m.cache.Has(b, d.Blobs[b]) {
			continue
		}
		rc, err := d.OpenBlob(b)
		if err != nil {
			return nil, fmt.Errorf("dir: image %s: %w", dir, err)
		}
		_, err = m.cache.Put(b, d.Blobs[b], rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("dir: image %s: blob %s: %w", dir, b, err)
		}
	}
	return &oci.Resolved{Image: oim, Contents: d.Contents}, nil
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
		err := gobin.CompilePackage(ctx, gobin.Options{ProjectRoot: m.src.Dir, GOOS: p.OS, GOARCH: p.Architecture, Variant: p.Variant}, pkg, dst)
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w", n, err)
		}
		m.built[key] = dst
		out[n] = dst
	}
	return out, nil
}
