package installer_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/installertest"
	"github.com/metalk8s/buildchain/internal/cli"
)

// tree is every path under root with its mode and content, to compare a
// root before and after a run.
func tree(t *testing.T, root string, skip ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s {
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func diff(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "-"+k)
		} else if v != w {
			d = append(d, "~"+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+"+k)
		}
	}
	return d
}

type result struct {
	err            error
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := installer.Run(context.Background(), args, &stdout, &stderr, installertest.Wire)
	var msg bytes.Buffer
	code := cli.ExitCode(installer.Name, err, &msg)
	return result{err, code, stdout.String(), stderr.String() + msg.String()}
}

func archive(t *testing.T, name, version string, fail ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name+"-"+version)
	if err := installertest.WriteArchive(dir, name, version, fail...); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestArchiveAddIdempotentAndRemove(t *testing.T) {
	root := t.TempDir()
	iso := archive(t, "MetalK8s", "2.0.0")
	before := tree(t, root)

	r := run(t, "--root", root, "archive", "add", iso)
	if r.code != 0 {
		t.Fatalf("archive add: %d %v\n%s", r.code, r.err, r.stderr)
	}
	for _, want := range []string{"added     file /etc/systemd/system/fake-metalk8s-2.0.0.mount", "added     directory /srv/scality/metalk8s-2.0.0",
		"added     file " + installer.StatePath, "added     file " + installertest.ConfPath} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(root, installertest.ConfPath))
	if !strings.Contains(string(conf), "/metalk8s-2.0.0/") {
		t.Errorf("served config %q lacks the archive", conf)
	}

	// Flags after the command, a relative path: the same archive.
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(filepath.Dir(iso))
	r = run(t, "archive", "add", filepath.Base(iso), "--root", root)
	if r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("second archive add: %d %v\n%s", r.code, r.err, r.stdout)
	}

	r = run(t, "--root", root, "archive", "remove", iso)
	if r.code != 0 {
		t.Fatalf("archive remove: %v", r.err)
	}
	if !strings.Contains(r.stdout, "removed   file /etc/systemd/system/fake-metalk8s-2.0.0.mount") {
		t.Errorf("remove report:\n%s", r.stdout)
	}
	// What remains is the empty state, the config serving nothing, the
	// mount point directory and the log.
	after := tree(t, root)
	for _, p := range diff(before, after) {
		switch strings.TrimLeft(p, "+") {
		case "var", "var/lib", "var/lib/metalk8s", "var/lib/metalk8s/installer", "var/lib/metalk8s/installer/archives.json",
			"var/log", "var/log/metalk8s", "var/log/metalk8s/installer.log", "etc", "etc/systemd", "etc/systemd/system",
			"etc/metalk8s", "etc/metalk8s/nginx", "etc/metalk8s/nginx/conf.d", "etc/metalk8s/nginx/conf.d/archives.conf",
			"srv", "srv/scality", "srv/scality/metalk8s-2.0.0":
		default:
			t.Errorf("left after remove: %s", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, installertest.ConfPath)); len(b) != 0 {
		t.Errorf("still served after remove: %q", b)
	}
	// Removing again, even when the ISO is gone, is no change.
	os.RemoveAll(iso)
	r = run(t, "--root", root, "archive", "remove", iso)
	if r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("removing a gone, uninstalled ISO: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	root := t.TempDir()
	iso := archive(t, "MetalK8s", "2.0.0")
	before := tree(t, root)
	r := run(t, "--dry-run", "--root", root, "archive", "add", iso)
	if r.code != 0 || !strings.Contains(r.stdout, "would be added") {
		t.Fatalf("dry run: %d %v\n%s", r.code, r.err, r.stdout)
	}
	if d := diff(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("dry run changed the root: %v", d)
	}
}

// Every failure leaves the root as it was, byte for byte, and says that
// it was rolled back.
func TestFailureRollsBack(t *testing.T) {
	for _, step := range []string{"mount", "serve"} {
		t.Run(step, func(t *testing.T) {
			root := t.TempDir()
			good := archive(t, "MetalK8s", "2.0.0")
			if r := run(t, "--root", root, "archive", "add", good); r.code != 0 {
				t.Fatal(r.err)
			}
			bad := archive(t, "MetalK8s", "2.1.0", step)
			before := tree(t, root, "var/log/metalk8s/installer.log")
			r := run(t, "--root", root, "archive", "add", bad)
			if r.code != 1 || !strings.Contains(r.stderr, "every change was rolled back") {
				t.Fatalf("failing %s: %d\n%s", step, r.code, r.stderr)
			}
			if d := diff(before, tree(t, root, "var/log/metalk8s/installer.log")); len(d) > 0 {
				t.Fatalf("failed run left %v", d)
			}
			log, _ := os.ReadFile(filepath.Join(root, installer.DefaultLogPath))
			if !strings.Contains(string(log), "rolled back: added file /etc/systemd/system/fake-metalk8s-2.1.0.mount") {
				t.Errorf("log does not record the rollback:\n%s", log)
			}
		})
	}
}

func TestSolutionAddRemove(t *testing.T) {
	root := t.TempDir()
	v1 := archive(t, "example-solution", "1.0.0")
	v2 := archive(t, "example-solution", "1.1.0")
	before := tree(t, root)
	for _, iso := range []string{v1, v2} {
		if r := run(t, "--root", root, "solution", "add", iso); r.code != 0 {
			t.Fatalf("solution add %s: %v", iso, r.err)
		}
	}
	list, _ := os.ReadFile(filepath.Join(root, "etc/metalk8s/solutions.list"))
	if string(list) != "example-solution-1.0.0\nexample-solution-1.1.0\n" {
		t.Fatalf("two versions side by side: %q", list)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/metalk8s/installer/manifests/example-solution-1.1.0/deployed")); err != nil {
		t.Fatal("not deployed:", err)
	}
	// The same version with other content is refused.
	other := archive(t, "example-solution", "1.0.0")
	os.WriteFile(filepath.Join(other, "product.txt"), []byte("NAME=example-solution\nVERSION=1.0.0\nGIT=other\n"), 0o644)
	if r := run(t, "--root", root, "solution", "add", other); r.code != 1 || !strings.Contains(r.stderr, "different content") {
		t.Fatalf("same version, other content: %d %s", r.code, r.stderr)
	}
	// A MetalK8s archive command does not remove a Solution.
	if r := run(t, "--root", root, "archive", "remove", v1); r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("archive remove of a solution: %d %s %s", r.code, r.stdout, r.stderr)
	}
	for _, iso := range []string{v2, v1} {
		if r := run(t, "--root", root, "solution", "remove", iso); r.code != 0 {
			t.Fatalf("solution remove %s: %v", iso, r.err)
		}
	}
	for _, p := range diff(before, tree(t, root)) {
		if strings.Contains(p, "fake-") || strings.Contains(p, "deployed") {
			t.Errorf("left after remove: %s", p)
		}
	}
	if list, _ := os.ReadFile(filepath.Join(root, "etc/metalk8s/solutions.list")); len(list) != 0 {
		t.Errorf("solutions list after remove: %q", list)
	}
}

func TestBootstrap(t *testing.T) {
	root := t.TempDir()
	a := archive(t, "MetalK8s", "2.0.0")
	os.MkdirAll(filepath.Join(root, "etc/metalk8s"), 0o755)
	// bootstrap.yaml's paths are node paths, under --root.
	inRoot := filepath.Join(root, "isos", "metalk8s")
	os.MkdirAll(filepath.Dir(inRoot), 0o755)
	if err := os.Rename(a, inRoot); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.list"), []byte("/isos/metalk8s\n"), 0o644)
	r := run(t, "--root", root, "bootstrap")
	if r.code != 0 || !strings.Contains(r.stdout, "fake-metalk8s-2.0.0.mount") {
		t.Fatalf("bootstrap: %d %v\n%s", r.code, r.err, r.stdout)
	}
	if r := run(t, "--root", root, "bootstrap"); !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("second bootstrap: %s", r.stdout)
	}
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.list"), []byte("isos/metalk8s\n"), 0o644)
	if r := run(t, "--root", root, "bootstrap"); r.code != 1 || !strings.Contains(r.stderr, "products.metalk8s[0]") {
		t.Fatalf("relative path in bootstrap.yaml: %d %s", r.code, r.stderr)
	}
}

// Until a piece lands, the commands that need it fail naming it.
func TestMissingPieces(t *testing.T) {
	root := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := installer.Run(context.Background(), []string{"--root", root, "solution", "add", "/x.iso"}, &stdout, &stderr, nil)
	if !errors.Is(err, installer.ErrNotBuiltYet) {
		t.Fatalf("err = %v", err)
	}
	for _, pkg := range []string{"installer/archive", "installer/mount", "installer/serve", "installer/config", "installer/kube"} {
		if !strings.Contains(err.Error(), pkg) {
			t.Errorf("error does not name %s: %v", pkg, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"serve"}, true},
		{[]string{"--verbose", "serve", "--dry-run"}, true},
		{[]string{"archive", "add", "--no-wait", "x.iso"}, true},
		{[]string{"archive", "add", "--", "-x.iso"}, true},
		{[]string{"--listen", "127.0.0.1:8080", "serve"}, true},
		{[]string{"--listen", "[::1]:8080", "serve"}, true},
		{[]string{"--listen", "repo.local:80", "serve"}, true},
		{[]string{}, false},
		{[]string{"archive"}, false},
		{[]string{"archive", "mount", "x"}, false},
		{[]string{"archive", "add"}, false},
		{[]string{"archive", "add", "a", "b"}, false},
		{[]string{"serve", "x"}, false},
		{[]string{"--nope", "serve"}, false},
		{[]string{"--listen", "127.0.0.1", "serve"}, false},
		{[]string{"--listen", "127.0.0.1:0", "serve"}, false},
		{[]string{"--listen", "127.0.0.1:080", "serve"}, false},
		{[]string{"--listen", "a;b:80", "serve"}, false},
		{[]string{"--listen", "x}:80", "serve"}, false},
		{[]string{"archive", "add", ""}, false},
	} {
		_, _, err := installer.Parse(tc.args)
		var ue cli.UsageError
		if tc.ok && err != nil {
			t.Errorf("%q: %v", tc.args, err)
		}
		if !tc.ok && !errors.As(err, &ue) {
			t.Errorf("%q: err = %v, want a usage error", tc.args, err)
		}
	}
	if _, _, err := installer.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestLogFile(t *testing.T) {
	root := t.TempDir()
	iso := archive(t, "MetalK8s", "2.0.0")
	old := syscall.Umask(0o077)
	r := run(t, "--root", root, "archive", "add", iso, "--verbose")
	syscall.Umask(old)
	if r.code != 0 {
		t.Fatal(r.err)
	}
	p := filepath.Join(root, installer.DefaultLogPath)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("log file: %v %v", fi, err)
	}
	if d, _ := os.Stat(filepath.Dir(p)); d.Mode().Perm() != 0o755 {
		t.Errorf("log directory mode %v", d.Mode().Perm())
	}
	if r2 := run(t, "--root", root, "serve"); r2.code != 0 {
		t.Fatal(r2.err)
	}
	log, _ := os.ReadFile(p)
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[\d+\] `
	for _, re := range []string{
		stamp + `metalk8s-installer --root ` + regexp.QuoteMeta(root) + ` archive add ` + regexp.QuoteMeta(iso) + ` --verbose \(root`,
		stamp + `added file /etc/systemd/system/fake-metalk8s-2.0.0.mount`,
		stamp + `done: \d+ added`,
		// Appended: the second run follows the first.
		`(?s)archive add.*` + stamp + `metalk8s-installer --root \S+ serve .*done: no changes`,
	} {
		if !regexp.MustCompile(re).Match(log) {
			t.Errorf("log does not match %s:\n%s", re, log)
		}
	}
	// --verbose logs to stderr too.
	if !strings.Contains(r.stderr, "metalk8s-2.0.0: verified") {
		t.Errorf("--verbose: stderr %q", r.stderr)
	}
	// An explicit log file under --dry-run is written; the root is not.
	own := filepath.Join(t.TempDir(), "dry.log")
	before := tree(t, root)
	if r := run(t, "--root", root, "--dry-run", "--log-file", own, "archive", "add", archive(t, "MetalK8s", "2.1.0")); r.code != 0 {
		t.Fatal(r.err)
	}
	if d := diff(before, tree(t, root)); len(d) > 0 {
		t.Errorf("dry run changed the root: %v", d)
	}
	if b, _ := os.ReadFile(own); !strings.Contains(string(b), "dry run") || !strings.Contains(string(b), "added file /etc/systemd/system/fake-metalk8s-2.1.0.mount") {
		t.Errorf("dry-run log:\n%s", b)
	}
}

func TestLockInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "metalk8s", "installer.lock")
	l, err := installer.AcquireLock(context.Background(), path, true, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files: a second open conflicts even
	// within this process.
	_, err = installer.AcquireLock(context.Background(), path, true, os.Stderr)
	if !errors.Is(err, installer.ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var said bytes.Buffer
	done := make(chan error)
	go func() {
		_, err := installer.AcquireLock(ctx, path, false, &said)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	// Unlock leaves nothing: neither the file nor the directories it made.
	if _, err := os.Stat(filepath.Dir(filepath.Dir(path))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lock directories left: %v", err)
	}
	l, err = installer.AcquireLock(context.Background(), path, true, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

func TestVersionMatchesVERSIONFile(t *testing.T) {
	v, err := product.ReadVersion(filepath.Join("..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "metalk8s-installer "+v.String()+" (go") {
		t.Fatalf("version printed %q, VERSION says %s: update installer/version.go", r.stdout, v)
	}
}
