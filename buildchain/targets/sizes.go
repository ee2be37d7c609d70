package targets

import (
	"context"
	"os"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/sizereport"
)

// sizeReport prints where the ISO's bytes go and records it as the
// "sizes" section of build-report.json (docs/integrity.md). It is no
// step: it writes nothing the build depends on, and measuring reads only
// manifests and stats, so every run reports, up to date or not.
func sizeReport(ctx context.Context, b *build.Session) error {
	if b.Engine.Planning() {
		return nil
	}
	fi, err := os.Stat(b.IsoPath())
	if err != nil {
		return err
	}
	r, err := sizereport.Build(ctx, os.DirFS(b.Cfg.RootDir()), fi.Size())
	if err != nil {
		return err
	}
	r.Print(b.Log)
	b.Engine.SetSection("sizes", r)
	return nil
}
