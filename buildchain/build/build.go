// Package build ties one buildchain run together: configuration, the lock
// on the build root, the up-to-date engine and the build report. Mage
// targets open a Session, run steps through it and close it.
package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// ErrNotBuiltYet marks a target whose capability has not landed. Targets
// fail with it rather than pretend to have built something.
var ErrNotBuiltYet = step.ErrNotBuiltYet

// Session is one locked run over a build root: its configuration, the lock,
// the step engine and the log. Targets work on a Session.
type Session struct {
	Cfg    *config.Config
	Engine *step.Engine
	Log    io.Writer
	lock   *fsutil.Lock

	infoOnce sync.Once
	info     product.Info
	infoErr  error
}

// Open loads the configuration of the project at root and locks its build root.
func Open(root string, log io.Writer) (*Session, error) {
	cfg, err := config.Load(root)
	if err != nil {
		return nil, err
	}
	return OpenConfig(cfg, log)
}

// OpenConfig checks and locks cfg.BuildRoot, marks it as a build root,
// removes what interrupted runs left in it, and starts an engine on it.
func OpenConfig(cfg *config.Config, log io.Writer) (*Session, error) {
	if err := CheckRoot(cfg.ProjectRoot, cfg.BuildRoot); err != nil {
		return nil, err
	}
	// Before LockDir, which would create .lock in a directory not ours.
	if err := claimRoot(cfg.BuildRoot); err != nil {
		return nil, err
	}
	lock, err := fsutil.LockDir(cfg.BuildRoot)
	if err != nil {
		return nil, err
	}
	// Holding the lock, no other run writes here: every temporary name
	// under the build root is the litter of a run killed before it could
	// remove it (a .tmp- file of an atomic write, a staging directory).
	if err := fsutil.RemoveTemps(cfg.BuildRoot); err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("removing the leftovers of interrupted runs: %w", err)
	}
	log = &syncWriter{w: log}
	return &Session{Cfg: cfg, Engine: step.New(cfg.BuildRoot, log), Log: log, lock: lock}, nil
}

// syncWriter lets steps running in parallel, and the progress reporter,
// share one log without interleaving inside a line.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// ReportPath is where the JSON build report goes.
func (b *Session) ReportPath() string { return filepath.Join(b.Cfg.BuildRoot, "build-report.json") }

// Close writes the build report and releases the lock.
func (b *Session) Close() error {
	err := b.Engine.WriteReport(b.ReportPath())
	if uerr := b.lock.Unlock(); err == nil {
		err = uerr
	}
	return err
}

// Run runs fn on a build opened at root and always closes it.
func Run(ctx context.Context, root string, fn func(context.Context, *Session) error) (err error) {
	b, err := Open(root, os.Stdout)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); err == nil {
			err = cerr
		}
	}()
	return fn(ctx, b)
}

// NotBuiltYet is the error of a target whose capability is missing.
func NotBuiltYet(what, issue string) error { return step.NotBuiltYet(what, issue) }

// ImagesDir is the images tree of the ISO root.
func (b *Session) ImagesDir() string { return filepath.Join(b.Cfg.RootDir(), "images") }

// BlobCache is the content-addressed cache shared by every build.
func (b *Session) BlobCache() oci.Cache {
	return oci.Cache{Dir: filepath.Join(b.Cfg.BuildRoot, "cache", "blobs")}
}

// IsoPath is where the MetalK8s ISO goes.
func (b *Session) IsoPath() string { return filepath.Join(b.Cfg.BuildRoot, "metalk8s.iso") }

// Info is the product identity of this build, read once per session:
// product.txt, the SBOM, the Salt tree and the ISO's volume ID all ask,
// and each `git describe --dirty` scans the work tree (a fifth of a
// no-op run's time on a loaded machine), and one run must not see two
// identities if the tree changes under it.
func (b *Session) Info() (product.Info, error) {
	b.infoOnce.Do(func() {
		v, err := product.ReadVersion(filepath.Join(b.Cfg.ProjectRoot, "VERSION"))
		if err != nil {
			b.infoErr = err
			return
		}
		b.info = product.Info{Name: b.Cfg.ProjectName, Version: v, Git: product.GitDescribe(b.Cfg.ProjectRoot), Built: b.Cfg.Epoch(), Host: b.Cfg.BuildHost}
	})
	return b.info, b.infoErr
}
