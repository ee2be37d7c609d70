package build

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Clean removes build outputs of one area: all, images or stamps.
func Clean(root, area string, log io.Writer) error {
	cfg, err := config.Load(root)
	if err != nil {
		return err
	}
	// Cleaning under a running build would pull outputs from under it.
	lock, err := fsutil.LockDir(cfg.BuildRoot)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	var paths []string
	switch area {
	case "all":
		entries, err := os.ReadDir(cfg.BuildRoot)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() != ".lock" {
				paths = append(paths, filepath.Join(cfg.BuildRoot, e.Name()))
			}
		}
	case "images":
		paths = []string{filepath.Join(cfg.RootDir(), "images"), filepath.Join(cfg.BuildRoot, "cache", "blobs"), filepath.Join(cfg.BuildRoot, ".stamps")}
	case "stamps":
		paths = []string{filepath.Join(cfg.BuildRoot, ".stamps")}
	default:
		return fmt.Errorf("clean: unknown area %q", area)
	}
	for _, p := range paths {
		fmt.Fprintf(log, "removing %s\n", p)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
