package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Clean removes build outputs of one area of cfg.BuildRoot:
//
//   - all: the top-level Entries (root/, cache/, bin/, packages/, .stamps/,
//     build-report.json, SHA256SUM, *.iso and .tmp-* litter); the marker,
//     the lock and anything else are kept;
//   - images: root/images/, cache/blobs/ and .stamps/;
//   - stamps: .stamps/.
//
// It refuses a build root that CheckRoot refuses or that has no Marker.
// Paths that do not exist are not listed. With cfg.DryRun (DRY_RUN=1,
// `clean -n`) it prints "would remove" and the same paths, and removes
// nothing.
func Clean(cfg *config.Config, area string, log io.Writer) error {
	if err := CheckRoot(cfg.ProjectRoot, cfg.BuildRoot); err != nil {
		return err
	}
	dir := cfg.BuildRoot
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(log, "%s does not exist, nothing to clean\n", dir)
		return nil
	}
	if err := checkMarked(dir); err != nil {
		return err
	}
	// Cleaning under a running build would pull outputs from under it.
	lock, err := fsutil.LockDir(dir)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	var paths []string
	switch area {
	case "all":
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if isEntry(e.Name()) {
				paths = append(paths, filepath.Join(dir, e.Name()))
			}
		}
	case "images":
		paths = []string{filepath.Join(cfg.RootDir(), "images"), filepath.Join(dir, "cache", "blobs"), filepath.Join(dir, ".stamps")}
	case "stamps":
		paths = []string{filepath.Join(dir, ".stamps")}
	default:
		return fmt.Errorf("clean: unknown area %q", area)
	}
	verb := "removing"
	if cfg.DryRun {
		verb = "would remove"
	}
	removed := 0
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		removed++
		fmt.Fprintf(log, "%s %s\n", verb, p)
		if cfg.DryRun {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if removed == 0 {
		fmt.Fprintf(log, "nothing to clean in %s\n", dir)
	}
	return nil
}
