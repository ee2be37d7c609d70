package targets

import (
	"context"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/salttree"
)

// SaltTree deploys the Salt states into the ISO root, with the version
// data they read. versions.json records the packages packaging resolved,
// so packaging runs first: its resolution writes resolved.json, which is
// an input of the saltTree step (its populate step is skipped when up to
// date). A plan does not resolve again: the packaging target, planned
// before it, has declared its steps, and saltTree's plan reads the
// resolved.json that exists.
func SaltTree(ctx context.Context, b *build.Session) error {
	if !b.Engine.Planning() {
		if err := Packaging(ctx, b); err != nil {
			return err
		}
	}
	info, err := b.Info()
	if err != nil {
		return err
	}
	return salttree.Build(ctx, salttree.Options{
		SaltDir:        filepath.Join(b.Cfg.ProjectRoot, "salt"),
		ImagesFile:     b.Cfg.ImagesFile,
		ResolvedFile:   filepath.Join(PackagingOptions(b).StateDir, "resolved.json"),
		Version:        info.Version,
		RepodataSigned: b.Cfg.RepoSigningKey != "",
		RootDir:        b.Cfg.RootDir(),
		Engine:         b.Engine,
		Log:            b.Log,
	})
}
