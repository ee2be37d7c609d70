package targets

import (
	"context"
	"io"
	"os"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/devtools"
)

// Target is a build target over one locked run.
type Target func(context.Context, *build.Session) error

// Run runs target on a build of the project at projectRoot, logging to
// stdout, and always writes the report and releases the lock. STEPS and
// FORCE select and force steps (see applySubset).
func Run(ctx context.Context, projectRoot string, target Target) error {
	return build.Run(ctx, projectRoot, func(ctx context.Context, b *build.Session) error {
		return RunSubset(ctx, b, target)
	})
}

// RunSubset runs target on b, honouring b.Cfg.Steps and b.Cfg.Force.
func RunSubset(ctx context.Context, b *build.Session, target Target) error {
	if err := applySubset(ctx, b, target); err != nil {
		return err
	}
	return target(ctx, b)
}

// Clean removes the outputs of one area (all, images, stamps) from the
// build root of the project at projectRoot; see build.Clean for what each
// removes and what it refuses.
func Clean(ctx context.Context, projectRoot, area string, log io.Writer) error {
	cfg, err := config.Load(projectRoot)
	if err != nil {
		return err
	}
	return build.Clean(cfg, area, log)
}

// Lint runs gofmt and go vet over the project.
func Lint(ctx context.Context, projectRoot string) error {
	return devtools.Lint(ctx, projectRoot, os.Stdout)
}

// Test installs the Debian packages the tests use, then runs the suite.
func Test(ctx context.Context, projectRoot string) error {
	return devtools.Test(ctx, projectRoot, os.Stdout)
}
