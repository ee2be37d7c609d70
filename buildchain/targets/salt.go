package targets

import (
	"context"
	"errors"
	"path/filepath"
	"sync"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/salttree"
)

// SaltTree deploys the Salt states into the ISO root, with the version
// data they read. versions.json records the packages packaging resolved
// and the digest each image is served by, so packaging and the images run
// first, in parallel: packaging's resolution writes resolved.json, an
// input of the saltTree step, and the images directories give the served
// digests (a single-platform build serves an index's platform manifest,
// not the pinned index). Images that are not built yet are reported, and
// the tree is still written. A plan does not resolve again: the packaging
// target, planned before it, has declared its steps, and saltTree's plan
// reads the resolved.json that exists.
func SaltTree(ctx context.Context, b *build.Session) error {
	var imagesMissing error
	if !b.Engine.Planning() {
		var images, pkgs error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); images = Images(ctx, b) }()
		pkgs = Packaging(ctx, b)
		wg.Wait()
		if pkgs != nil {
			return pkgs
		}
		if images != nil && !errors.Is(images, build.ErrNotBuiltYet) {
			return images
		}
		imagesMissing = images
	} else if err := Images(ctx, b); err != nil && !errors.Is(err, build.ErrNotBuiltYet) {
		return err
	}
	info, err := b.Info()
	if err != nil {
		return err
	}
	err = salttree.Build(ctx, salttree.Options{
		SaltDir:        filepath.Join(b.Cfg.ProjectRoot, "salt"),
		ImagesFile:     b.Cfg.ImagesFile,
		ImagesDir:      b.ImagesDir(),
		ResolvedFile:   filepath.Join(PackagingOptions(b).StateDir, "resolved.json"),
		Version:        info.Version,
		RepodataSigned: b.Cfg.RepoSigningKey != "",
		RootDir:        b.Cfg.RootDir(),
		Engine:         b.Engine,
		Log:            b.Log,
	})
	if err != nil {
		return err
	}
	return imagesMissing
}
