//go:build mage

// The MetalK8s buildchain. Each target calls one function of
// buildchain/targets, where the wiring lives.
package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"

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
	return targets.Run(ctx, ".", targets.Iso)
}

// Demo builds the ISO offline, against a local registry and yum repository
// it starts and stops, into dist/demo, and reads the ISO back.
func Demo(ctx context.Context) error {
	return targets.Demo(ctx, ".", os.Stdout)
}

// Images fetches, verifies and de-duplicates the container images.
func Images(ctx context.Context) error {
	return targets.Run(ctx, ".", targets.Images)
}

// Packaging downloads and builds the RPM packages and repositories.
func Packaging(ctx context.Context) error {
	return targets.Run(ctx, ".", targets.Packaging)
}

// SaltTree deploys the Salt tree inside the ISO root, after the images and packaging whose results it records.
func SaltTree(ctx context.Context) error {
	return targets.Run(ctx, ".", targets.SaltTree)
}

// PopulateIso fills the ISO root: images, packages, Salt tree, product.txt.
func PopulateIso(ctx context.Context) error {
	return targets.Run(ctx, ".", targets.PopulateIso)
}

// Solution builds the example Solution archive (examples/solution) into the build root.
func Solution(ctx context.Context) error {
	return targets.Run(ctx, ".", targets.Solution)
}

// Lint runs gofmt and go vet over the project.
func Lint(ctx context.Context) error {
	return targets.Lint(ctx, ".")
}

// Test installs the Debian packages the tests use, then runs go test -race ./...
func Test(ctx context.Context) error {
	return targets.Test(ctx, ".")
}

// Steps lists the steps of the build graph matching PATTERN ("" or "*" for
// all; "*" matches any run of characters: images/pull:*, *:1.0), one line
// each: name, status, target. Nothing is built.
func Steps(ctx context.Context, pattern string) error {
	return targets.Steps(ctx, ".", pattern, os.Stdout)
}

// Info prints a step's inputs and their digests, dependencies, outputs,
// status, last run and, when it would run, why.
func Info(ctx context.Context, step string) error {
	return targets.Info(ctx, ".", step, os.Stdout)
}

// Completion prints a completion script for targets and step names:
// source <(go run mage.go completion bash), or zsh.
func Completion(ctx context.Context, shell string) error {
	names := []string{"iso", "demo", "images", "packaging", "saltTree", "populateIso", "solution", "lint", "test",
		"clean", "clean:all", "clean:images", "clean:stamps", "steps", "info", "completion", "vagrant:up"}
	return targets.Completion(ctx, ".", shell, names, os.Stdout)
}

// Clean removes build outputs.
type Clean mg.Namespace

// All removes what the build made in the build root (see README.md).
func (Clean) All(ctx context.Context) error { return targets.Clean(ctx, ".", "all", os.Stdout) }

// Images removes the images of the ISO root and the blob cache.
func (Clean) Images(ctx context.Context) error { return targets.Clean(ctx, ".", "images", os.Stdout) }

// Stamps forgets what is up to date, so the next build re-runs every step.
func (Clean) Stamps(ctx context.Context) error { return targets.Clean(ctx, ".", "stamps", os.Stdout) }

// Vagrant runs a MetalK8s Bootstrap node in a local VM (docs/vagrant.md).
type Vagrant mg.Namespace

// Up spawns the Bootstrap VM from the built ISO with VAGRANT_PROVIDER and
// VAGRANT_UP_ARGS, then saves VAGRANT_SNAPSHOT_NAME if set.
func (Vagrant) Up(ctx context.Context) error { return targets.VagrantUp(ctx, ".") }
