package build

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

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// ImagesDir is the images tree of the ISO root.
func (b *Build) ImagesDir() string { return filepath.Join(b.Cfg.RootDir(), "images") }

// BlobCache is the content-addressed cache shared by every build.
func (b *Build) BlobCache() oci.Cache {
	return oci.Cache{Dir: filepath.Join(b.Cfg.BuildRoot, "cache", "blobs")}
}

// Images fetches the listed images and builds the local ones into the ISO
// root, then hard-links identical blobs.
func Images(ctx context.Context, b *Build) error {
	data, err := os.ReadFile(b.Cfg.ImagesFile)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	list, err := oci.ParseList(b.Cfg.ImagesFile, data)
	if err != nil {
		return err
	}
	progress := oci.NewProgress(os.Stderr)
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
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, b.Cfg.Jobs)
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Every image is tried even when one fails, so that one run
			// reports every broken entry of the list.
			if err := b.Engine.Run(ctx, s); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	progress.Wait()
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return errors.Join(errs...)
	}

	keep := map[string]bool{}
	for _, im := range list {
		keep[filepath.Join(im.Name, im.Version)] = true
	}
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
func pruneImages(root string, keep map[string]bool, b *Build) error {
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
		if _, err := os.Stat(filepath.Join(p, "manifest.json")); err != nil {
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
