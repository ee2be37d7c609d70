// Package targets implements the buildchain's targets over one locked
// build: each composes the packages that do the work. magefile.go wires
// them to mage.
package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/rpm/packaging"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/registrygen"
)

// Packaging builds the RPM repositories of the ISO root.
func Packaging(ctx context.Context, b *build.Session) error {
	return packaging.BuildRepos(ctx, PackagingOptions(b))
}

// PackagingOptions are the packaging options of the run b.
func PackagingOptions(b *build.Session) packaging.Options {
	return packaging.Options{
		ProjectRoot:    b.Cfg.ProjectRoot,
		PackagesFile:   b.Cfg.PackagesFile,
		RepoMirrors:    b.Cfg.RepoMirrors,
		RepoSigningKey: b.Cfg.RepoSigningKey,
		Epoch:          b.Cfg.Epoch(),
		Jobs:           b.Cfg.Jobs,
		CacheDir:       filepath.Join(b.Cfg.BuildRoot, "cache", "rpm"),
		StateDir:       filepath.Join(b.Cfg.BuildRoot, "packages"),
		OutDir:         filepath.Join(b.Cfg.RootDir(), "packages", "redhat"),
		Engine:         b.Engine,
		Log:            b.Log,
		Binaries: func(ctx context.Context) (map[string]string, error) {
			// RPMs are built for EL x86_64 nodes, whatever the build host.
			bins, _, err := Binaries(ctx, b, v1.Platform{OS: "linux", Architecture: "amd64"})
			return bins, err
		},
	}
}

// PopulateIso fills the ISO root with everything that exists, and reports
// each part that is missing instead of silently leaving it out.
func PopulateIso(ctx context.Context, b *build.Session) error {
	// SaltTree runs Images and Packaging first, in parallel: versions.json
	// records the packages' resolution and the images' served digests.
	missing, err := parallelParts(ctx, b, SaltTree)
	if err != nil {
		return err
	}
	if err := productTxt(ctx, b); err != nil {
		return err
	}
	if err := registryConfig(ctx, b); err != nil {
		return err
	}
	if err := examples(ctx, b); err != nil {
		return err
	}
	if err := installerWrappers(ctx, b); err != nil {
		if !errors.Is(err, build.ErrNotBuiltYet) {
			return err
		}
		missing = append(missing, err)
	}
	return missingError(b.Log, missing)
}

func productTxt(ctx context.Context, b *build.Session) error {
	info, err := b.Info()
	if err != nil {
		return err
	}
	data, err := info.ProductTxt()
	if err != nil {
		return err
	}
	out := filepath.Join(b.Cfg.RootDir(), "product.txt")
	return b.Engine.Run(ctx, step.Step{
		Name:    "product.txt",
		Inputs:  []step.Input{step.Value("content", string(data))},
		Outputs: []string{out},
		Run:     func(context.Context) error { return fsutil.WriteFile(out, data, 0o644) },
	})
}

// Iso builds the MetalK8s ISO from the ISO root. When parts of the root
// are not built yet, the ISO is still written from what exists, and the
// target fails naming what is missing, so no one mistakes it for complete.
func Iso(ctx context.Context, b *build.Session) error {
	populated := PopulateIso(ctx, b)
	if populated != nil && !errors.Is(populated, build.ErrNotBuiltYet) {
		return populated
	}
	if err := checkedBeforeIso(ctx, b, populated); err != nil {
		return err
	}
	info, err := b.Info()
	if err != nil {
		return err
	}
	opts := iso.ProductOptions(info.Name+" "+info.Version.String(), b.Cfg.Epoch())
	opts.ApplicationID = "METALK8S BUILDCHAIN"
	opts.ImplantMD5 = true
	out := b.IsoPath()
	err = b.Engine.Run(ctx, step.Step{
		Name: "iso",
		Inputs: []step.Input{
			step.Stat(b.Cfg.RootDir()),
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
			return saveIsoDigest(b, out, res)
		},
	})
	if err != nil {
		return err
	}
	if err := afterIso(ctx, b); err != nil {
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
	return fmt.Errorf("%d part(s) %w", len(missing), build.ErrNotBuiltYet)
}

// RegistryConfigTemplate is the nginx include that serves the ISO's images
// as a read-only registry. It is generated the way chapter 12 asks of
// Solutions, so that the installer renders both alike: the repository name
// and the mount point are Jinja placeholders.
const RegistryConfigTemplate = solution.RegistryConfig

func registryConfig(ctx context.Context, b *build.Session) error {
	out := filepath.Join(b.Cfg.RootDir(), RegistryConfigTemplate)
	// A build with no image at all still serves an (empty) registry.
	if err := os.MkdirAll(b.ImagesDir(), 0o755); err != nil {
		return err
	}
	return b.Engine.Run(ctx, step.Step{
		Name:    "registry-config",
		Inputs:  []step.Input{step.Stat(b.ImagesDir())},
		Outputs: []string{out},
		Run: func(context.Context) error {
			return solution.WriteRegistryConfig(b.Cfg.RootDir(), registrygen.WithConstants)
		},
	})
}
