package targets

import (
	"context"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/vagrant"
)

// VagrantUp spawns the Bootstrap VM of vagrant/ from BUILD_ROOT/metalk8s.iso
// with VAGRANT_PROVIDER, VAGRANT_UP_ARGS and VAGRANT_SNAPSHOT_NAME. It builds
// nothing and takes no build lock: the ISO must have been built before, and
// a missing one is named with the command that builds it.
func VagrantUp(ctx context.Context, projectRoot string) error {
	cfg, err := config.Load(projectRoot)
	if err != nil {
		return err
	}
	return vagrant.Up(ctx, VagrantOptions(cfg))
}

// VagrantOptions maps the configuration onto vagrant.Options.
func VagrantOptions(cfg *config.Config) vagrant.Options {
	return vagrant.Options{
		Dir: filepath.Join(cfg.ProjectRoot, "vagrant"),
		// The same path as build.Session.IsoPath, without a session's lock.
		ISO:      filepath.Join(cfg.BuildRoot, "metalk8s.iso"),
		Provider: cfg.VagrantProvider,
		UpArgs:   cfg.VagrantUpArgs,
		Snapshot: cfg.VagrantSnapshotName,
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
	}
}
