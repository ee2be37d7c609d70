package targets

import (
	"context"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/isosbom"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// isoSBOM writes root/sbom.cdx.json (docs/integrity.md). As for the
// manifest, the document is computed first (it reads only manifests and
// repodata) and is its step's input.
func isoSBOM(ctx context.Context, b *build.Session) error {
	info, err := b.Info()
	if err != nil {
		return err
	}
	bom, err := isosbom.Generate(ctx, os.DirFS(b.Cfg.RootDir()), isosbom.Options{
		Product: info.Name,
		Version: info.Version.String(),
		Epoch:   b.Cfg.Epoch(),
	})
	if err != nil {
		return err
	}
	data, err := isosbom.Encode(bom)
	if err != nil {
		return err
	}
	out := filepath.Join(b.Cfg.RootDir(), isosbom.Name)
	return b.Engine.Run(ctx, step.Step{
		Name:    "iso-sbom",
		Inputs:  []step.Input{step.Value("content", string(data))},
		Outputs: []string{out},
		Run:     func(context.Context) error { return fsutil.WriteFile(out, data, 0o644) },
	})
}
