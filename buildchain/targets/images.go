package targets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/imagebuild"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// Images fetches the listed images and builds the local ones into the ISO
// root, then hard-links identical blobs.
func Images(ctx context.Context, b *build.Session) error {
	data, err := os.ReadFile(b.Cfg.ImagesFile)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	list, err := oci.ParseList(b.Cfg.ImagesFile, data)
	if err != nil {
		return err
	}
	// Bars go to a terminal; elsewhere the plain lines join the build log.
	out := b.Log
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		out = os.Stderr
	}
	progress := oci.NewProgress(out)
	f := &oci.Fetcher{
		Cache:     b.BlobCache(),
		Mirrors:   b.Cfg.ImageMirrors,
		Insecure:  b.Cfg.InsecureRegistries,
		Platforms: b.Cfg.Platforms,
		Progress:  progress,
	}
	var (
		mu    sync.Mutex
		errs  []error
		names []string
		g     errgroup.Group
	)
	g.SetLimit(b.Cfg.Jobs)
	for _, im := range list {
		name := "images/pull:" + im.Name + ":" + im.Version
		names = append(names, name)
		dir := filepath.Join(b.ImagesDir(), im.Name, im.Version)
		s := step.Step{
			Name: name,
			Inputs: []step.Input{
				step.Value("entry", im.Ref()+" as "+im.Name+":"+im.Version),
				step.Value("upstream", f.UpstreamRef(im)),
				step.Value("platforms", strings.Join(b.Cfg.Platforms, ",")),
			},
			Outputs: []string{dir},
			Run: func(ctx context.Context) error {
				res, err := f.Fetch(ctx, im)
				if err != nil {
					return err
				}
				return oci.WriteDir(dir, res, f.Cache)
			},
		}
		g.Go(func() error {
			// Every image is tried even when one fails, so that one run
			// reports every broken entry of the list.
			if err := b.Engine.Run(ctx, s); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	progress.Wait()
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		err := errors.Join(errs...)
		if hosts := oci.UnreachableHosts(err); len(hosts) > 0 {
			// One line a user can act on before the per-image details.
			err = errors.Join(fmt.Errorf("images: cannot reach %s; on a machine without access to the upstream registries, point IMAGE_MIRRORS (in .env or the environment) at a mirror, e.g. IMAGE_MIRRORS=docker.io=127.0.0.1:5000", strings.Join(hosts, ", ")), err)
		}
		return err
	}

	keep := map[string]bool{}
	for _, im := range list {
		keep[filepath.Join(im.Name, im.Version)] = true
	}
	local, err := localImages(ctx, b, f, keep)
	if err != nil {
		return err
	}
	names = append(names, local...)
	if err := pruneImages(b.ImagesDir(), keep, b); err != nil {
		return err
	}

	inputs := make([]step.Input, 0, len(names))
	for _, n := range names {
		inputs = append(inputs, step.Output(n))
	}
	err = b.Engine.Run(ctx, step.Step{
		Name:    "images/dedup",
		Inputs:  inputs,
		Outputs: []string{b.ImagesDir()},
		Run: func(context.Context) error {
			st, err := oci.Dedup(b.ImagesDir())
			if err != nil {
				return err
			}
			fmt.Fprintf(b.Log, "images: %d files, %s in all, %s on disk: hard links save %s (%d new links)\n",
				st.Files, oci.HumanBytes(st.LogicalSize), oci.HumanBytes(st.UniqueSize), oci.HumanBytes(st.Saved()), st.Linked)
			return nil
		},
	})
	fmt.Fprintf(b.Log, "images: %s transferred\n", oci.HumanBytes(f.Transferred()))
	return err
}

// pruneImages removes image directories that the lists no longer name, and
// the litter of interrupted runs, so the ISO never ships a stale image.
func pruneImages(root string, keep map[string]bool, b *build.Session) error {
	if b.Engine.Planning() { // steps, info: list, change nothing
		return nil
	}
	if err := fsutil.RemoveTemps(root); err != nil {
		return err
	}
	var stale []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() || p == root {
			return nil
		}
		if _, err := os.Stat(filepath.Join(p, dirlayout.ManifestFile)); err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if !keep[rel] {
			stale = append(stale, p)
		}
		return filepath.SkipDir
	})
	if err != nil {
		return err
	}
	for _, p := range stale {
		fmt.Fprintf(b.Log, "images: removing %s, no longer listed\n", p)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// localImages builds the images defined under images/<name>/image.yaml,
// after the static binaries they ship. It returns the names of their steps
// and adds their directories to keep.
func localImages(ctx context.Context, b *build.Session, f *oci.Fetcher, keep map[string]bool) ([]string, error) {
	defs, err := imagebuild.LoadDir(filepath.Join(b.Cfg.ProjectRoot, "images"))
	if err != nil || len(defs) == 0 {
		return nil, err
	}
	info, err := b.Info()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, def := range defs {
		version, err := def.ResolveVersion(info.Version.String())
		if err != nil {
			return nil, err
		}
		key := filepath.Join(def.Name, version)
		if keep[key] {
			return nil, fmt.Errorf("%s: image %s:%s is also listed in %s", def.Path, def.Name, version, b.Cfg.ImagesFile)
		}
		keep[key] = true
		dir := filepath.Join(b.ImagesDir(), key)
		inputs := []step.Input{
			step.Value("epoch", b.Cfg.Epoch().String()),
			step.Value("version", version),
		}
		var bins map[string]string
		if names, all := def.Binaries(); all || len(names) > 0 {
			// The binaries are built for the image's platform, not the host's.
			var stepName string
			if bins, stepName, err = Binaries(ctx, b, def.Platform); err != nil {
				return nil, err
			}
			inputs = append(inputs, step.Output(stepName))
		}
		if def.Base != nil {
			inputs = append(inputs, step.Value("base-upstream", f.UpstreamRef(oci.Image{Source: def.Base.Source, Digest: def.Base.Digest.String()})))
		}
		for _, p := range def.Inputs(b.Cfg.ProjectRoot) {
			inputs = append(inputs, step.File(p))
		}
		name := "images/build:" + def.Name + ":" + version
		names = append(names, name)
		err = b.Engine.Run(ctx, step.Step{
			Name:    name,
			Inputs:  inputs,
			Outputs: []string{dir},
			Run: func(ctx context.Context) error {
				img, err := imagebuild.Build(ctx, def, imagebuild.Options{
					ProjectRoot:    b.Cfg.ProjectRoot,
					Epoch:          b.Cfg.Epoch(),
					ProductVersion: info.Version.String(),
					Binaries:       bins,
					BaseFetcher: func(ctx context.Context, source string, digest v1.Hash, p v1.Platform) (v1.Image, error) {
						return f.Image(ctx, source, digest.String(), p)
					},
				})
				if err != nil {
					return err
				}
				res, err := oci.StoreImage(oci.Image{Name: def.Name, Version: version}, img, f.Cache)
				if err != nil {
					return err
				}
				fmt.Fprintf(b.Log, "built %s:%s, digest %s\n", def.Name, version, oci.DigestOf(res.Manifest))
				return oci.WriteDir(dir, res, f.Cache)
			},
		})
		if err != nil {
			return nil, err
		}
	}
	return names, nil
}

// Binaries builds the project's CLIs as static binaries for the platform p
// under BUILD_ROOT/bin/<os>_<arch>[_<variant>], and returns them by name
// with the name of the step that built them. Several images share one
// build. The variant is part of the name because it changes the code
// (GOARM for arm/v6 and arm/v7).
func Binaries(ctx context.Context, b *build.Session, p v1.Platform) (map[string]string, string, error) {
	root := b.Cfg.ProjectRoot
	clis, err := gobin.Discover(root)
	if err != nil {
		return nil, "", err
	}
	goos, goarch := p.OS, p.Architecture
	variant := ""
	if gobin.GOARM(goarch, p.Variant) != "" {
		variant = p.Variant
	}
	name := "binaries:" + goos + "/" + goarch
	dir := goos + "_" + goarch
	if variant != "" {
		name += "/" + variant
		dir += "_" + variant
	}
	out := filepath.Join(b.Cfg.BuildRoot, "bin", dir)
	bins := map[string]string{}
	outputs := []string{}
	for _, c := range clis {
		bins[c] = filepath.Join(out, c)
		outputs = append(outputs, bins[c])
	}
	inputs := []step.Input{
		step.File(filepath.Join(root, "go.mod")),
		step.File(filepath.Join(root, "go.sum")),
		step.Value("clis", strings.Join(clis, ",")),
		step.Value("go", goVersion()),
	}
	// Every Go package the CLIs may import lives in these trees.
	for _, dir := range []string{"cmd", "buildchain", "registrygen", "internal", "installer"} {
		inputs = append(inputs, step.Tree(filepath.Join(root, dir)))
	}
	if b.Engine.Finished(name) {
		return bins, name, nil
	}
	err = b.Engine.Run(ctx, step.Step{
		Name:    name,
		Inputs:  inputs,
		Outputs: outputs,
		Run: func(ctx context.Context) error {
			_, err := gobin.Compile(ctx, gobin.Options{ProjectRoot: root, OutDir: out, CLIs: clis, GOOS: goos, GOARCH: goarch, Variant: variant, Jobs: b.Cfg.Jobs})
			return err
		},
	})
	return bins, name, err
}
