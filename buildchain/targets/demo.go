package targets

import (
	"context"
	"io"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/demo"
)

// Demo builds the ISO offline against local upstreams (see buildchain/demo)
// into BUILD_ROOT/demo, installing the Debian packages it needs first,
// and prints what it built and what each phase took.
func Demo(ctx context.Context, projectRoot string, log io.Writer) error {
	cfg, err := config.Load(projectRoot)
	if err != nil {
		return err
	}
	res, err := demo.Run(ctx, demo.Options{
		Cfg:         cfg,
		BuildRoot:   filepath.Join(cfg.BuildRoot, "demo"),
		Build:       Iso,
		InstallDeps: true,
		Log:         log,
	})
	if res != nil && res.ISO != "" {
		res.Print(log)
	}
	return err
}
