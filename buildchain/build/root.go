package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Marker is the file that makes a directory a build root. The build writes
// it on first use; clean removes nothing from a directory without it.
const Marker = ".metalk8s-build-root"

const markerContent = "This directory is a MetalK8s buildchain build root (BUILD_ROOT).\n" +
	"`go run mage.go clean` removes from it only the entries the build creates.\n"

// Entries are the names the build creates at the top of a build root, as
// filepath.Match patterns. Clean removes these and nothing else; a build
// adopts an unmarked directory only when it holds nothing else (the build
// root of a buildchain older than the marker).
var Entries = []string{
	"root", "cache", "bin", "packages", ".stamps", "build-report.json",
	"SHA256SUM", "*.iso", fsutil.TempPrefix + "*",
}

// kept are the entries of a build root that clean never removes.
var kept = []string{Marker, ".lock"}

func isEntry(name string) bool {
	for _, p := range Entries {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// systemDirs are directories a build root must never be: clean would empty
// them, and a build would litter them.
var systemDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt",
	"/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
	"/usr/local", "/usr/local/bin", "/usr/sbin", "/usr/share", "/usr/src", "/var", "/var/cache",
	"/var/lib", "/var/log", "/var/tmp",
}

// resolve makes p absolute and resolves the symlinks of its longest
// existing prefix, so that a relative path, "..", or a link to the project
// are all compared as the kernel will see them.
func resolve(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// within reports whether p is dir or below it; both are clean and absolute.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// CheckRoot refuses a build root that a build, and clean above all, must not
// own: the project itself or one of its ancestors (clean would delete the
// sources and .git), a directory inside .git, a system directory, the
// temporary directory itself, or the home directory.
func CheckRoot(projectRoot, buildRoot string) error {
	br, err := resolve(buildRoot)
	if err != nil {
		return fmt.Errorf("BUILD_ROOT %s: %w", buildRoot, err)
	}
	pr, err := resolve(projectRoot)
	if err != nil {
		return fmt.Errorf("project root %s: %w", projectRoot, err)
	}
	show := buildRoot
	if br != filepath.Clean(buildRoot) {
		show = fmt.Sprintf("%s (%s)", buildRoot, br)
	}
	if within(pr, br) {
		return fmt.Errorf("BUILD_ROOT %s is or contains the project %s: clean would delete the project; use a directory inside it such as dist, or one outside it", show, pr)
	}
	if within(br, filepath.Join(pr, ".git")) {
		return fmt.Errorf("BUILD_ROOT %s is inside the project's .git", show)
	}
	refused := slices.Clone(systemDirs)
	refused = append(refused, os.TempDir())
	if home, err := os.UserHomeDir(); err == nil {
		refused = append(refused, home)
	}
	for _, d := range refused {
		rd, err := resolve(d)
		if err != nil {
			continue
		}
		if br == rd || br == filepath.Clean(d) {
			return fmt.Errorf("BUILD_ROOT %s is the system directory %s: use a directory of its own", show, d)
		}
	}
	return nil
}

// claimRoot makes dir a build root: it refuses an unmarked directory holding
// anything the build did not create, and writes the marker.
func claimRoot(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, Marker)); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var foreign []string
	for _, e := range entries {
		if !isEntry(e.Name()) && !slices.Contains(kept, e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) > 0 {
		if len(foreign) > 5 {
			foreign = append(foreign[:5], "...")
		}
		return fmt.Errorf("BUILD_ROOT %s is not a build root (no %s) and holds files the build did not make (%s): use a new or empty directory",
			dir, Marker, strings.Join(foreign, ", "))
	}
	return fsutil.WriteFile(filepath.Join(dir, Marker), []byte(markerContent), 0o644)
}

// checkMarked refuses to touch a directory that the build did not mark.
func checkMarked(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, Marker)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("refusing to clean %s: it has no %s, so no build made it its build root; remove what you want from it by hand", dir, Marker)
		}
		return err
	}
	return nil
}
