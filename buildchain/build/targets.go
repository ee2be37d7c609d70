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
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/step"
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
	if err := productTxt(ctx, b); err != nil {
		return err
	}
	return missingError(b.Log, missing)
}

// Info is the product identity of this build.
func (b *Build) Info() (product.Info, error) {
	v, err := product.ReadVersion(filepath.Join(b.Cfg.ProjectRoot, "VERSION"))
	if err != nil {
		return product.Info{}, err
	}
	return product.Info{Name: b.Cfg.ProjectName, Version: v, Git: product.GitDescribe(b.Cfg.ProjectRoot), Built: b.Cfg.Epoch()}, nil
}

func productTxt(ctx context.Context, b *Build) error {
	info, err := b.Info()
	if err != nil {
		return err
	}
	data := info.ProductTxt()
	out := filepath.Join(b.Cfg.RootDir(), "product.txt")
	return b.Engine.Run(ctx, step.Step{
		Name:    "product.txt",
		Inputs:  []step.Input{step.Value("content", string(data))},
		Outputs: []string{out},
		Run:     func(context.Context) error { return fsutil.WriteFile(out, data, 0o644) },
	})
}

// IsoPath is where the MetalK8s ISO goes.
func (b *Build) IsoPath() string { return filepath.Join(b.Cfg.BuildRoot, "metalk8s.iso") }

// Iso builds the MetalK8s ISO from the ISO root. When parts of the root
// are not built yet, the ISO is still written from what exists, and the
// target fails naming what is missing, so no one mistakes it for complete.
func Iso(ctx context.Context, b *Build) error {
	populated := PopulateIso(ctx, b)
	if populated != nil && !errors.Is(populated, ErrNotBuiltYet) {
		return populated
	}
	info, err := b.Info()
	if err != nil {
		return err
	}
	opts := iso.Options{
		VolumeID:      info.Name + " " + info.Version.String(),
		ApplicationID: "METALK8S BUILDCHAIN",
		RockRidge:     true,
		Joliet:        true,
		JolietLong:    true,
		UID:           new(uint32),
		GID:           new(uint32),
		Epoch:         b.Cfg.Epoch(),
		ImplantMD5:    true,
	}
	out := b.IsoPath()
	err = b.Engine.Run(ctx, step.Step{
		Name: "iso",
		Inputs: []step.Input{
			step.Output("images/dedup"),
			step.Output("product.txt"),
			step.Value("volume-id", opts.VolumeID),
			step.Value("epoch", b.Cfg.Epoch().String()),
		},
		Outputs: []string{out},
		Run: func(ctx context.Context) error {
			res, err := iso.Write(ctx, out, b.Cfg.RootDir(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(b.Log, "iso: %s, %s, %d files in %d extents (%s shared), sha256 %s\n",
				out, oci.HumanBytes(res.Size), res.Files, res.Extents, oci.HumanBytes(res.SharedBytes), res.SHA256)
			return nil
		},
	})
	if err != nil {
		return err
	}
	return populated
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
