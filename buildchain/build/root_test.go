package build

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// project makes a small project checkout, with a .git, under a fresh
// directory, and returns its root.
func project(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "project")
	for name, data := range map[string]string{
		"VERSION":                "1.0.0\n",
		"magefile.go":            "package main\n",
		".git/HEAD":              "ref: refs/heads/main\n",
		"images/images.yaml":     "images: []\n",
		"packages/packages.yaml": "repos: []\n",
	} {
		f := filepath.Join(p, name)
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// listing is every path under root, with its kind and size, to show that
// nothing was removed or added.
func listing(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		lines = append(lines, fmt.Sprintf("%s %s %d", rel, info.Mode().Type(), info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// markedRoot is a project's dist/ build root after one run has opened
// (and so marked) it.
func markedRoot(t *testing.T) (string, *config.Config) {
	t.Helper()
	proj := project(t)
	dir := filepath.Join(proj, "dist")
	cfg := load(t, proj, dir)
	b, err := OpenConfig(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return dir, cfg
}

func load(t *testing.T, projectRoot, buildRoot string) *config.Config {
	t.Helper()
	t.Setenv("BUILD_ROOT", buildRoot)
	t.Setenv("SOURCE_DATE_EPOCH", "0")
	cfg, err := config.Load(projectRoot)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A build root that is, or contains, the project is refused by the build
// and by every clean area, and nothing of the project is removed or added.
func TestBuildRootContainingTheProjectIsRefused(t *testing.T) {
	proj := project(t)
	link := filepath.Join(t.TempDir(), "link-to-project")
	if err := os.Symlink(proj, link); err != nil {
		t.Fatal(err)
	}
	linkParent := filepath.Join(t.TempDir(), "link-to-parent")
	if err := os.Symlink(filepath.Dir(proj), linkParent); err != nil {
		t.Fatal(err)
	}
	// Relative values are relative to the project root (config), and the
	// process runs elsewhere: what is checked is what the build would use.
	// "/" is checked by TestSystemDirectoriesAreRefused through CheckRoot
	// alone, which OpenConfig and Clean call first: here a regression would
	// write into, or clean, the real root of the machine.
	for _, br := range []string{".", "..", filepath.Join(proj, ".."), proj + "/./", link, linkParent, "../project/..", ".git", ".git/objects"} {
		t.Run(strings.ReplaceAll(br, "/", "_"), func(t *testing.T) {
			cfg := load(t, proj, br)
			parent := filepath.Dir(proj)
			before := listing(t, parent)
			if b, err := OpenConfig(cfg, io.Discard); err == nil {
				b.Close()
				t.Fatalf("BUILD_ROOT=%s accepted as %s", br, cfg.BuildRoot)
			} else {
				t.Log(err)
			}
			for _, area := range []string{"all", "images", "stamps"} {
				if err := Clean(cfg, area, io.Discard); err == nil {
					t.Fatalf("clean:%s accepted BUILD_ROOT=%s", area, br)
				}
			}
			if after := listing(t, parent); after != before {
				t.Fatalf("the project's directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestSystemDirectoriesAreRefused(t *testing.T) {
	proj := project(t)
	home, _ := os.UserHomeDir()
	for _, br := range []string{"/", "/usr", "/etc", "/home", "/root", "/var", "/tmp", "/tmp/", os.TempDir(), home, "/usr/../etc"} {
		if br == "" {
			continue
		}
		if err := CheckRoot(proj, br); err == nil {
			t.Errorf("BUILD_ROOT=%s accepted", br)
		}
	}
	// A link to a system directory is that directory.
	link := filepath.Join(t.TempDir(), "etc")
	os.Symlink("/etc", link)
	if err := CheckRoot(proj, link); err == nil {
		t.Errorf("BUILD_ROOT=%s (a link to /etc) accepted", link)
	}
	// Directories below them are fine: /tmp/x, the project's dist.
	for _, br := range []string{filepath.Join(t.TempDir(), "out"), filepath.Join(proj, "dist"), filepath.Join(filepath.Dir(proj), "dist")} {
		if err := CheckRoot(proj, br); err != nil {
			t.Errorf("BUILD_ROOT=%s refused: %v", br, err)
		}
	}
}

// clean removes nothing from a directory the build did not mark.
func TestCleanRefusesAnUnmarkedDirectory(t *testing.T) {
	proj := project(t)
	dir := filepath.Join(t.TempDir(), "mine")
	for _, name := range []string{"root/images/x", "cache/notes.txt", "thesis.tex", ".stamps/s.json", "metalk8s.iso"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte("precious"), 0o644)
	}
	before := listing(t, dir)
	cfg := load(t, proj, dir)
	for _, area := range []string{"all", "images", "stamps"} {
		err := Clean(cfg, area, io.Discard)
		if err == nil || !strings.Contains(err.Error(), Marker) {
			t.Fatalf("clean:%s on an unmarked directory: %v", area, err)
		}
	}
	// Nor does a build adopt it: it holds a file the build did not make.
	if b, err := OpenConfig(cfg, io.Discard); err == nil {
		b.Close()
		t.Fatal("build adopted a directory holding thesis.tex")
	} else if !strings.Contains(err.Error(), "thesis.tex") {
		t.Fatalf("error does not name the foreign file: %v", err)
	}
	if after := listing(t, dir); after != before {
		t.Fatalf("directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// clean:all removes the entries the build creates and keeps the rest.
func TestCleanAllRemovesOnlyBuildEntries(t *testing.T) {
	dir, cfg := markedRoot(t)
	if _, err := os.Stat(filepath.Join(dir, Marker)); err != nil {
		t.Fatalf("no marker after a build: %v", err)
	}
	for _, name := range []string{"root/images/a/1/manifest.json", "cache/blobs/sha256/ab", "bin/linux_amd64/mkiso", "packages/resolved.json",
		".stamps/x.json", "metalk8s.iso", "example-solution-1.0.0.iso", "SHA256SUM", ".tmp-x", "notes.txt", "mine/file"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	var log bytes.Buffer
	if err := Clean(cfg, "all", &log); err != nil {
		t.Fatal(err)
	}
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if got, want := strings.Join(left, " "), ".lock "+Marker+" mine notes.txt"; got != want {
		t.Fatalf("left %q, want %q\n%s", got, want, log.String())
	}
	if _, err := os.Stat(filepath.Join(cfg.ProjectRoot, ".git", "HEAD")); err != nil {
		t.Fatal(err)
	}
}

// The build root of a buildchain older than the marker is adopted.
func TestOldBuildRootIsAdopted(t *testing.T) {
	proj := project(t)
	dir := filepath.Join(proj, "dist")
	os.MkdirAll(filepath.Join(dir, "root", "images"), 0o755)
	os.WriteFile(filepath.Join(dir, "metalk8s.iso"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".lock"), nil, 0o644)
	b, err := OpenConfig(load(t, proj, dir), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := os.Stat(filepath.Join(dir, Marker)); err != nil {
		t.Fatal(err)
	}
}

// A build killed with -9 leaves an atomic write's .tmp- file and a staging
// directory; the next run, once it holds the lock, removes them.
func TestLeftoversOfAKilledBuildAreRemoved(t *testing.T) {
	if os.Getenv("BUILD_TEST_KILLED_CHILD") != "" {
		return // the child's work happens in TestMain
	}
	proj := project(t)
	dir := filepath.Join(proj, "dist")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeftoversOfAKilledBuildAreRemoved$")
	cmd.Env = append(os.Environ(), "BUILD_TEST_KILLED_CHILD="+proj, "BUILD_ROOT="+dir, "SOURCE_DATE_EPOCH=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		t.Fatalf("child: %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	temps := func() []string {
		var found []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
				found = append(found, p)
			}
			return nil
		})
		return found
	}
	if got := temps(); len(got) < 2 {
		t.Fatalf("the killed child left %v, want a .tmp- file and a staging directory", got)
	}
	b, err := OpenConfig(load(t, proj, dir), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := temps(); len(got) != 0 {
		t.Fatalf("left after the next run locked the build root: %v", got)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "root", "images", "kept")); err != nil || string(data) != "complete" {
		t.Fatalf("a complete file was touched: %q, %v", data, err)
	}
}

func TestMain(m *testing.M) {
	if proj := os.Getenv("BUILD_TEST_KILLED_CHILD"); proj != "" {
		killedChild(proj)
		return
	}
	os.Exit(m.Run())
}

// killedChild starts a build, publishes one file, and is killed in the
// middle of an atomic write and of a directory staging.
func killedChild(proj string) {
	cfg, err := config.Load(proj)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, err := OpenConfig(cfg, io.Discard)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = b
	images := filepath.Join(cfg.RootDir(), "images")
	if err := fsutil.WriteFile(filepath.Join(images, "kept"), []byte("complete"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stage, err := fsutil.TempDir(filepath.Join(images, "app", "1.0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.WriteFile(filepath.Join(stage, "manifest.json"), []byte("{"), 0o644)
	fsutil.WriteWith(filepath.Join(cfg.BuildRoot, "metalk8s.iso"), 0o644, func(w io.Writer) error {
		w.Write([]byte("half an ISO"))
		fmt.Println("ready")
		time.Sleep(time.Hour) // killed here
		return nil
	})
}
