package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Packaging builds the RPM repositories of the ISO root.
func Packaging(ctx context.Context, b *Build) error {
	return NotBuiltYet("packaging: RPM repositories", "issue 5")
}

// SaltTree deploys the Salt states into the ISO root.
func SaltTree(ctx context.Context, b *Build) error {
	return NotBuiltYet("saltTree: the Salt states are not part of this project yet", "no issue yet")
}

// PopulateIso fills the ISO root with everything that exists, and reports
// each part that is missing instead of silently leaving it out.
func PopulateIso(ctx context.Context, b *Build) error {
	var missing []error
	for _, part := range []func(context.Context, *Build) error{Images, Packaging, SaltTree} {
		if err := part(ctx, b); err != nil {
			if !errors.Is(err, ErrNotBuiltYet) {
				return err
			}
			missing = append(missing, err)
		}
	}
	return missingError(b.Log, missing)
}

// Iso builds the MetalK8s ISO.
func Iso(ctx context.Context, b *Build) error {
	err := PopulateIso(ctx, b)
	if err != nil && !errors.Is(err, ErrNotBuiltYet) {
		return err
	}
	return errors.Join(err, NotBuiltYet("iso: the ISO 9660 writer", "issue 4"))
}

func missingError(log io.Writer, missing []error) error {
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintln(log, "missing from this build:")
	for _, m := range missing {
		fmt.Fprintf(log, "  - %v\n", m)
	}
	return fmt.Errorf("%d part(s) %w", len(missing), ErrNotBuiltYet)
}

// Clean removes build outputs of one area: all, images or stamps.
func Clean(root, area string, log io.Writer) error {
	cfg, err := config.Load(root)
	if err != nil {
		return err
	}
	// Cleaning under a running build would pull outputs from under it.
	lock, err := fsutil.LockDir(cfg.BuildRoot)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	var paths []string
	switch area {
	case "all":
		entries, err := os.ReadDir(cfg.BuildRoot)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() != ".lock" {
				paths = append(paths, filepath.Join(cfg.BuildRoot, e.Name()))
			}
		}
	case "images":
		paths = []string{filepath.Join(cfg.RootDir(), "images"), filepath.Join(cfg.BuildRoot, "cache", "blobs"), filepath.Join(cfg.BuildRoot, ".stamps")}
	case "stamps":
		paths = []string{filepath.Join(cfg.BuildRoot, ".stamps")}
	default:
		return fmt.Errorf("clean: unknown area %q", area)
	}
	for _, p := range paths {
		fmt.Fprintf(log, "removing %s\n", p)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
