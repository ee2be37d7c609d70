package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// GzipLevel is the fixed compression level of every layer. The digest of
// a layer is the digest of its compressed bytes, so the level is part of
// the image's identity: changing it changes every digest.
const GzipLevel = 6

// BaseFetcher returns the base image pinned by source and digest, resolved
// to platform when the digest names an index. It is the caller's fetch
// pipeline, which verifies what it downloads: this package never talks to
// the network.
type BaseFetcher func(ctx context.Context, source string, digest v1.Hash, platform v1.Platform) (v1.Image, error)

// Options are the inputs of Build that do not come from the definition.
type Options struct {
	// ProjectRoot resolves the relative src paths of the definition.
	ProjectRoot string
	// Epoch (SOURCE_DATE_EPOCH) is every timestamp in the image: file
	// mtimes, the config's created time and its history.
	Epoch time.Time
	// ProductVersion is the version of definitions that say "product".
	ProductVersion string
	// Binaries maps a CLI name to its static binary (see package gobin).
	// "build:*" takes all of them, in name order.
	Binaries map[string]string
	// BaseFetcher fetches pinned bases; nil is fine for scratch images.
	BaseFetcher BaseFetcher
}

// Build assembles the image a definition describes. The result is held in
// memory (layers are compressed once, here) and is identical, down to the
// manifest digest, for identical definitions, input files and options.
func Build(ctx context.Context, def *Definition, opts Options) (v1.Image, error) {
	version, err := def.ResolveVersion(opts.ProductVersion)
	if err != nil {
		return nil, err
	}
	where := func(line int) string { return fmt.Sprintf("%s:%d", def.Path, line) }

	base, layerType, err := baseImage(ctx, def, opts)
	if err != nil {
		return nil, err
	}
	epoch := v1.Time{Time: opts.Epoch.UTC().Truncate(time.Second)}

	adds := make([]mutate.Addendum, 0, len(def.Layers))
	for i, l := range def.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		layer, n, err := buildLayer(def.Path, l, opts, epoch.Time, layerType)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{
			Layer: layer,
			// Only names and counts here: an absolute path of the checkout
			// would make the config differ between two machines.
			History: v1.History{
				Created:   epoch,
				CreatedBy: fmt.Sprintf("metalk8s imagebuild %s: layer %d of %d, %d entries", def.Name, i+1, len(def.Layers), n),
			},
		})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("%s: appending layers: %w", where(def.Line), err)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the base config: %w", where(def.Line), err)
	}
	cf = cf.DeepCopy()
	applyConfig(cf, def, version, epoch)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("%s: setting the config: %w", where(def.Line), err)
	}
	// Computing the digest now surfaces every error in Build rather than
	// in whichever writer first touches the image.
	if _, err := img.Digest(); err != nil {
		return nil, fmt.Errorf("%s: computing the image digest: %w", where(def.Line), err)
	}
	return img, nil
}

// baseImage returns the image to build on and the layer media type that
// matches its manifest format (an OCI manifest must list OCI layers, a
// Docker one Docker layers).
func baseImage(ctx context.Context, def *Definition, opts Options) (v1.Image, types.MediaType, error) {
	if def.Base == nil {
		// OCI media types for new images: it is the open standard, and
		// every reader the ISO serves (containerd, skopeo) takes it.
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		return img, types.OCILayer, nil
	}
	b := def.Base
	at := fmt.Sprintf("%s:%d", def.Path, b.Line)
	if opts.BaseFetcher == nil {
		return nil, "", fmt.Errorf("%s: image %s has base %s@%s but no base fetcher was given", at, def.Name, b.Source, b.Digest)
	}
	img, err := opts.BaseFetcher(ctx, b.Source, b.Digest, def.Platform)
	if err != nil {
		return nil, "", fmt.Errorf("%s: fetching base %s@%s: %w", at, b.Source, b.Digest, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, "", fmt.Errorf("%s: base %s@%s: reading its config: %w", at, b.Source, b.Digest, err)
	}
	if cf.OS != def.Platform.OS || cf.Architecture != def.Platform.Architecture ||
		(def.Platform.Variant != "" && cf.Variant != "" && cf.Variant != def.Platform.Variant) {
		got := cf.OS + "/" + cf.Architecture
		if cf.Variant != "" {
			got += "/" + cf.Variant
		}
		return nil, "", fmt.Errorf("%s: base %s@%s is %s, but the image is built for %s", at, b.Source, b.Digest, got, platformString(def.Platform))
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, "", fmt.Errorf("%s: base %s@%s: %w", at, b.Source, b.Digest, err)
	}
	switch mt {
	case types.DockerManifestSchema2:
		return img, types.DockerLayer, nil
	case types.OCIManifestSchema1:
		return img, types.OCILayer, nil
	}
	return nil, "", fmt.Errorf("%s: base %s@%s has media type %s; want a single-platform OCI or Docker v2 manifest", at, b.Source, b.Digest, mt)
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// applyConfig sets what the definition says over the base config.
func applyConfig(cf *v1.ConfigFile, def *Definition, version string, epoch v1.Time) {
	c := def.Config
	cf.Created = epoch
	if def.Base == nil {
		cf.OS, cf.Architecture, cf.Variant = def.Platform.OS, def.Platform.Architecture, def.Platform.Variant
	}
	// These describe how the base was built (a container ID, a build
	// host's name, a Docker version); carried over they would claim that
	// this image was built the same way.
	cf.Container, cf.DockerVersion, cf.Config.Hostname = "", "", ""
	if c.Entrypoint != nil {
		cf.Config.Entrypoint = emptyToNil(c.Entrypoint)
		// As in a Dockerfile, a new entrypoint drops the base's cmd, whose
		// arguments were meant for the old entrypoint.
		if c.Cmd == nil {
			cf.Config.Cmd = nil
		}
	}
	if c.Cmd != nil {
		cf.Config.Cmd = emptyToNil(c.Cmd)
	}
	for _, e := range c.Env {
		e = expand(e, version)
		key, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, old := range cf.Config.Env {
			if k, _, _ := strings.Cut(old, "="); k == key {
				cf.Config.Env[i], replaced = e, true
			}
		}
		if !replaced {
			cf.Config.Env = append(cf.Config.Env, e)
		}
	}
	if len(c.Labels) > 0 {
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		for k, v := range c.Labels {
			cf.Config.Labels[k] = expand(v, version)
		}
	}
	if c.WorkingDir != "" {
		cf.Config.WorkingDir = c.WorkingDir
	}
	if c.User != "" {
		cf.Config.User = c.User
	}
}

func emptyToNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// tarEntry is one member of a layer tar.
type tarEntry struct {
	path string // absolute image path
	mode fs.FileMode
	src  string // host file; empty for a directory
	line int
}

// buildLayer writes the layer tar and gzips it, returning the layer and
// the number of entries.
func buildLayer(defPath string, l Layer, opts Options, epoch time.Time, mt types.MediaType) (v1.Layer, int, error) {
	at := func(line int) string { return fmt.Sprintf("%s:%d", defPath, line) }
	var files []tarEntry
	var checks []entry
	for _, f := range l.Files {
		bin, isBin := f.Binary()
		switch {
		case isBin && bin == "*":
			if len(opts.Binaries) == 0 {
				return nil, 0, fmt.Errorf("%s: %s: no CLI binaries were built for this image", at(f.Line), AllBinaries)
			}
			names := make([]string, 0, len(opts.Binaries))
			for n := range opts.Binaries {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if !cliRE.MatchString(n) {
					return nil, 0, fmt.Errorf("%s: %s: binary name %q is not a CLI name", at(f.Line), AllBinaries, n)
				}
				files = append(files, tarEntry{path: f.Target(n), mode: f.Mode, src: opts.Binaries[n], line: f.Line})
			}
		case isBin:
			src, ok := opts.Binaries[bin]
			if !ok {
				return nil, 0, fmt.Errorf("%s: %s: no binary was built for CLI %q (is there a ./cmd/%s?)", at(f.Line), f.Src, bin, bin)
			}
			files = append(files, tarEntry{path: f.Target(bin), mode: f.Mode, src: src, line: f.Line})
		default:
			files = append(files, tarEntry{
				path: f.Target(path.Base(f.Src)), mode: f.Mode, line: f.Line,
				src: filepath.Join(opts.ProjectRoot, filepath.FromSlash(f.Src)),
			})
		}
	}
	for _, e := range files {
		checks = append(checks, entry{path: e.path, line: e.line})
	}
	for _, d := range l.Dirs {
		checks = append(checks, entry{path: d.Path, dir: true, line: d.Line})
	}
	if err := checkEntries(checks); err != nil {
		return nil, 0, fmt.Errorf("%s: %s", at(err.line), err.msg)
	}

	// Parents of every entry are members too, with mode 0755 unless the
	// layer lists them: extracting a tar whose directories are implicit
	// gives modes and owners that depend on the extractor.
	all := map[string]tarEntry{}
	for _, d := range l.Dirs {
		all[d.Path] = tarEntry{path: d.Path, mode: d.Mode, line: d.Line}
	}
	for _, e := range files {
		all[e.path] = e
	}
	for p := range all {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, ok := all[dir]; !ok {
				all[dir] = tarEntry{path: dir, mode: fs.ModeDir | 0o755}
			}
		}
	}
	ents := make([]tarEntry, 0, len(all))
	for _, e := range all {
		ents = append(ents, e)
	}
	// A parent sorts before its children (a prefix sorts first), so the
	// order is both deterministic and extractable in one pass.
	sort.Slice(ents, func(i, j int) bool { return ents[i].path < ents[j].path })

	var compressed bytes.Buffer
	zw, err := gzip.NewWriterLevel(&compressed, GzipLevel)
	if err != nil {
		return nil, 0, err
	}
	// The gzip header keeps its zero value: no file name and a zero
	// mtime, so that it depends on nothing but the data.
	diffID := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diffID))
	for _, e := range ents {
		if err := writeEntry(tw, e, epoch); err != nil {
			if e.line > 0 {
				return nil, 0, fmt.Errorf("%s: %w", at(e.line), err)
			}
			return nil, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return newMemLayer(compressed.Bytes(), diffID, mt), len(ents), nil
}

// writeEntry writes one tar member with every field fixed: root owner, no
// user or group names, mtime = epoch. The format is left to archive/tar,
// which picks USTAR when the entry fits and PAX otherwise; both are
// deterministic since only path and size ever need PAX records.
func writeEntry(tw *tar.Writer, e tarEntry, epoch time.Time) error {
	name := strings.TrimPrefix(e.path, "/")
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(e.mode.Perm()),
		ModTime: epoch,
	}
	if e.src == "" {
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	}
	f, err := os.Open(e.src)
	if err != nil {
		return fmt.Errorf("file for %s: %w", e.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s (for %s) is not a regular file", e.src, e.path)
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("tar header for %s: %w", e.path, err)
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return fmt.Errorf("copying %s into the layer: %w", e.src, err)
	}
	if n != st.Size() {
		return fmt.Errorf("%s changed size while it was read (%d bytes, then %d)", e.src, st.Size(), n)
	}
	return nil
}

// memLayer is a gzipped layer held in memory. It exists (rather than
// tarball.LayerFromOpener) so that the compression, and with it the
// digest, is done once and by this package's fixed settings.
type memLayer struct {
	data           []byte
	digest, diffID v1.Hash
	mt             types.MediaType
}

func newMemLayer(data []byte, diffID hash.Hash, mt types.MediaType) *memLayer {
	sum := sha256.Sum256(data)
	return &memLayer{
		data:   data,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diffID.Sum(nil))},
		mt:     mt,
	}
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.data))
}

var _ v1.Layer = (*memLayer)(nil)
