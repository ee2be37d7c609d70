package targets

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// WrappersDir is where the project keeps the ISO's wrapper scripts
// (bootstrap.sh, iso-manager.sh, solution-manager.sh), relative to the
// project root.
const WrappersDir = "scripts/iso"

// InstallerCLI is the CLI the wrappers run; the ISO ships it static as
// bin/<InstallerCLI>, beside them.
const InstallerCLI = "metalk8s-installer"

// installerWrappers puts the wrapper scripts (0755) at the ISO root and
// the static linux/amd64 installer at bin/metalk8s-installer, where the
// wrappers look first. Every *.sh of WrappersDir is shipped. A project
// without WrappersDir ships no wrappers, and the log says so; one with
// wrappers but no installer CLI fails as not built yet, naming it.
func installerWrappers(ctx context.Context, b *build.Session) error {
	src := filepath.Join(b.Cfg.ProjectRoot, WrappersDir)
	scripts, err := filepath.Glob(filepath.Join(src, "*.sh"))
	if err != nil {
		return err
	}
	if len(scripts) == 0 {
		fmt.Fprintf(b.Log, "no %s/*.sh in the project: the ISO has no installer wrappers\n", WrappersDir)
		return nil
	}
	sort.Strings(scripts)
	clis, err := gobin.Discover(b.Cfg.ProjectRoot)
	if err != nil {
		return err
	}
	if !slices.Contains(clis, InstallerCLI) {
		return build.NotBuiltYet("the ISO's "+InstallerCLI+" (cmd/"+InstallerCLI+", run by "+WrappersDir+"/*.sh)", "issue 12")
	}
	// The nodes are EL x86_64, whatever the build host.
	bins, binStep, err := Binaries(ctx, b, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return err
	}
	bin := bins[InstallerCLI]
	root := b.Cfg.RootDir()
	inputs := []step.Input{step.Tree(src), step.Output(binStep)}
	var outputs []string
	for _, s := range scripts {
		outputs = append(outputs, filepath.Join(root, filepath.Base(s)))
	}
	dst := filepath.Join(root, "bin", InstallerCLI)
	outputs = append(outputs, dst)
	return b.Engine.Run(ctx, step.Step{
		Name:    "installer-wrappers",
		Inputs:  inputs,
		Outputs: outputs,
		Run: func(context.Context) error {
			for i, s := range scripts {
				if err := copyExecutable(s, outputs[i]); err != nil {
					return err
				}
			}
			return copyExecutable(bin, dst)
		},
	})
}

// copyExecutable copies a regular file to dst, 0755 whatever the umask,
// atomically.
func copyExecutable(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: a %s, not a regular file", src, fsutil.TypeName(fi.Mode()))
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := fsutil.WriteWith(dst, 0o755, func(w io.Writer) error { _, err := io.Copy(w, in); return err }); err != nil {
		return fmt.Errorf("copying %s into the ISO root: %w", src, err)
	}
	return nil
}
