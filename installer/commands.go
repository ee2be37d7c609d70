package installer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/installer/change"
)

// runner runs one command over the pieces, under the lock.
type runner struct {
	tx    *change.Tx
	p     Pieces
	log   *Logger
	opts  Options
	state State
}

func (r *runner) run(ctx context.Context, c command) error {
	var err error
	if r.state, err = LoadState(r.tx); err != nil {
		return err
	}
	switch c.name {
	case "bootstrap":
		return r.bootstrap(ctx)
	case "archive add":
		return r.add(ctx, KindMetalK8s, c.operands[0])
	case "archive remove":
		return r.remove(ctx, KindMetalK8s, c.operands[0])
	case "solution add":
		return r.add(ctx, KindSolution, c.operands[0])
	case "solution remove":
		return r.remove(ctx, KindSolution, c.operands[0])
	case "serve":
		if err := r.p.need("server"); err != nil {
			return err
		}
		return r.serve(ctx)
	case "stop":
		return r.stop(ctx)
	}
	return fmt.Errorf("command %q has no implementation", c.name)
}

// bootstrap installs every archive bootstrap.yaml names, then serves them
// all: one serve, one reload.
func (r *runner) bootstrap(ctx context.Context) error {
	if err := r.p.need("config", "verifier", "mounter", "server"); err != nil {
		return err
	}
	paths, err := r.p.Config.BootstrapArchives(r.tx)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("/etc/metalk8s/bootstrap.yaml: products.metalk8s: no archive to install")
	}
	for i, p := range paths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("/etc/metalk8s/bootstrap.yaml: products.metalk8s[%d]: %q is not an absolute path", i, p)
		}
		if _, err := r.install(ctx, KindMetalK8s, r.tx.Path(p)); err != nil {
			return fmt.Errorf("products.metalk8s[%d] %s: %w", i, p, err)
		}
	}
	return r.commit(ctx)
}

func (r *runner) add(ctx context.Context, k Kind, path string) error {
	need := []string{"verifier", "mounter", "server"}
	if k == KindSolution {
		need = append(need, "config", "deployer")
	}
	if err := r.p.need(need...); err != nil {
		return err
	}
	a, err := r.install(ctx, k, path)
	if err != nil {
		return err
	}
	if k == KindSolution {
		if err := r.p.Config.AddSolution(r.tx, a); err != nil {
			return err
		}
	}
	if err := r.commit(ctx); err != nil {
		return err
	}
	// Deployed last: the UI's images are served by now.
	if k == KindSolution {
		return r.p.Deployer.Deploy(ctx, r.tx, a)
	}
	return nil
}

// install verifies and mounts one archive and records it in the state.
func (r *runner) install(ctx context.Context, k Kind, path string) (Archive, error) {
	var a Archive
	var err error
	if k == KindSolution {
		a, err = r.p.Verifier.Solution(ctx, path)
	} else {
		a, err = r.p.Verifier.Archive(ctx, path)
	}
	if err != nil {
		return a, err
	}
	if err := a.Check(); err != nil {
		return a, err
	}
	if a.Kind != k {
		return a, fmt.Errorf("%s is a %s archive, not a %s one", path, a.Kind, k)
	}
	if old, ok := r.state.Find(a.ID()); ok {
		switch {
		case old.Kind != a.Kind:
			return a, fmt.Errorf("%s: %s is already installed as a %s archive from %s", path, a.ID(), old.Kind, old.Source)
		case old.Digest != "" && a.Digest != "" && old.Digest != a.Digest:
			return a, fmt.Errorf("%s: %s is already installed from %s with different content (%s, this one is %s); remove it first",
				path, a.ID(), old.Source, old.Digest, a.Digest)
		}
	}
	r.log.Printf("%s: verified (%s archive %s), mounting at %s", a.ID(), a.Kind, a.Source, a.MountPoint())
	if err := r.p.Mounter.Mount(ctx, r.tx, a); err != nil {
		return a, err
	}
	r.state.Put(a)
	return a, nil
}

// remove undoes add: the archive is found by its source in the state (its
// ISO may be gone), else by what its ISO says.
func (r *runner) remove(ctx context.Context, k Kind, path string) error {
	need := []string{"mounter", "server"}
	if k == KindSolution {
		need = append(need, "config", "deployer")
	}
	if err := r.p.need(need...); err != nil {
		return err
	}
	a, ok := r.state.FindSource(k, path)
	if !ok {
		// Verifiers record sources free of symbolic links.
		if real, err := filepath.EvalSymlinks(path); err == nil {
			a, ok = r.state.FindSource(k, real)
		}
	}
	if !ok {
		if err := r.p.need("verifier"); err != nil {
			return err
		}
		var err error
		if k == KindSolution {
			a, err = r.p.Verifier.Solution(ctx, path)
		} else {
			a, err = r.p.Verifier.Archive(ctx, path)
		}
		if _, serr := os.Stat(path); err != nil && errors.Is(serr, fs.ErrNotExist) {
			// Every installed archive is in the state by its source.
			r.log.Printf("nothing is installed from %s (and it does not exist): nothing to remove", path)
			return nil
		}
		if err != nil {
			return fmt.Errorf("nothing is installed from %s, and reading it failed: %w", path, err)
		}
		if a, ok = r.state.Find(a.ID()); !ok || a.Kind != k {
			r.log.Printf("%s is not installed: nothing to remove", path)
			return nil
		}
	}
	if k == KindSolution {
		if err := r.p.Deployer.Undeploy(ctx, r.tx, a); err != nil {
			return err
		}
		if err := r.p.Config.RemoveSolution(r.tx, a); err != nil {
			return err
		}
	}
	r.state.Delete(a.ID())
	// Served no more before it is unmounted: nginx never points at an
	// empty mount point.
	if err := r.commit(ctx); err != nil {
		return err
	}
	return r.p.Mounter.Unmount(ctx, r.tx, a)
}

// commit saves the state and serves what it lists.
func (r *runner) commit(ctx context.Context) error {
	if err := r.state.Save(r.tx); err != nil {
		return err
	}
	return r.serve(ctx)
}

func (r *runner) serve(ctx context.Context) error {
	return r.p.Server.Serve(ctx, r.tx, append([]Archive(nil), r.state.Archives...))
}
