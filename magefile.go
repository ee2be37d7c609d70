//go:build mage

// The MetalK8s buildchain. Targets only wire the packages under buildchain/
// together; the logic lives there.
package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/devtools"
	"github.com/metalk8s/buildchain/buildchain/targets"
)

// Default is what `go run mage.go` builds.
var Default = Iso

// Aliases keeps the short names the docs use.
var Aliases = map[string]interface{}{
	"clean": Clean.All,
}

// Iso builds the MetalK8s ISO, the default target.
func Iso(ctx context.Context) error {
	return run(ctx, targets.Iso)
}

// Images fetches, verifies and de-duplicates the container images.
func Images(ctx context.Context) error {
	return run(ctx, targets.Images)
}

// Packaging downloads and builds the RPM packages and repositories.
func Packaging(ctx context.Context) error {
	return run(ctx, targets.Packaging)
}

// SaltTree deploys the Salt tree inside the ISO root.
func SaltTree(ctx context.Context) error {
	return run(ctx, targets.SaltTree)
}

// PopulateIso fills the ISO root: images, packages, Salt tree, product.txt.
func PopulateIso(ctx context.Context) error {
	return run(ctx, targets.PopulateIso)
}

// Solution builds the example Solution archive (examples/solution) into the build root.
func Solution(ctx context.Context) error {
	return run(ctx, targets.Solution)
}

// Lint runs gofmt and go vet over the project.
func Lint(ctx context.Context) error {
	return devtools.Lint(ctx, ".", os.Stdout)
}

// Test installs the Debian packages the tests use, then runs go test -race ./...
func Test(ctx context.Context) error {
	return devtools.Test(ctx, ".", os.Stdout)
}

// Clean removes build outputs.
type Clean mg.Namespace

// All removes the whole build root.
func (Clean) All(ctx context.Context) error { return build.Clean(".", "all", os.Stdout) }

// Images removes the images of the ISO root and the blob cache.
func (Clean) Images(ctx context.Context) error { return build.Clean(".", "images", os.Stdout) }

// Stamps forgets what is up to date, so the next build re-runs every step.
func (Clean) Stamps(ctx context.Context) error { return build.Clean(".", "stamps", os.Stdout) }

func run(ctx context.Context, fn func(context.Context, *build.Build) error) error {
	return build.Run(ctx, ".", fn)
}
