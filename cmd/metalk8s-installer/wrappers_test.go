package main

import (
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmbuild"
	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/installertest"
	"github.com/metalk8s/buildchain/internal/cli/clitest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

var wrappers = []string{"bootstrap.sh", "iso-manager.sh", "solution-manager.sh"}

const scriptsDir = "../../scripts/iso"

func TestWrappersShellcheckClean(t *testing.T) {
	bin := testenv.Need(t, "shellcheck")[0]
	var paths []string
	for _, w := range wrappers {
		paths = append(paths, filepath.Join(scriptsDir, w))
	}
	out, err := exec.Command(bin, append([]string{"--shell=bash", "--severity=style"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// isoRoot lays the wrappers out as on the ISO, with installer as
// bin/metalk8s-installer beside them.
func isoRoot(t *testing.T, installerBin string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "iso")
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, w := range wrappers {
		copyFile(t, filepath.Join(scriptsDir, w), filepath.Join(dir, w), 0o755)
	}
	if installerBin != "" {
		copyFile(t, installerBin, filepath.Join(dir, "bin", "metalk8s-installer"), 0o755)
	}
	return dir
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// wrapper runs a wrapper script with bash. The installer it finds is this
// test binary, which runs main (with the stand-ins) in the child, as
// clitest arranges.
func wrapper(t *testing.T, dir, script string, env []string, args ...string) (int, string, string) {
	t.Helper()
	bash := testenv.Need(t, "bash")[0]
	c := clitest.Command(t)
	c.Path = bash
	c.Args = append([]string{bash, script}, args...)
	c.Dir = dir
	c.Env = append(c.Env, fakesEnv+"=1")
	c.Env = append(c.Env, env...)
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestWrappers(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	iso := isoRoot(t, self)
	root := t.TempDir()
	rootEnv := []string{"METALK8S_INSTALLER_ROOT=" + root}
	work := t.TempDir()
	script := func(w string) string { return filepath.Join(iso, w) }

	// Command lines: -h exits 0 with the usage; a bad one exits 2 with it.
	for _, tc := range []struct {
		script string
		args   []string
		want   int
	}{
		{"bootstrap.sh", []string{"-h"}, 0},
		{"iso-manager.sh", []string{"--help"}, 0},
		{"solution-manager.sh", []string{"-h"}, 0},
		{"bootstrap.sh", []string{"extra"}, 2},
		{"bootstrap.sh", []string{"--log-file"}, 2},
		{"iso-manager.sh", nil, 2},
		{"iso-manager.sh", []string{"-a"}, 2},
		{"iso-manager.sh", []string{"--add="}, 2},
		{"iso-manager.sh", []string{"-a", "x", "-d", "y"}, 2},
		{"iso-manager.sh", []string{"-x"}, 2},
		{"solution-manager.sh", []string{"--del"}, 2},
		{"solution-manager.sh", []string{"--frob", "-a", "x"}, 2},
	} {
		code, stdout, stderr := wrapper(t, work, script(tc.script), rootEnv, tc.args...)
		if code != tc.want || !strings.Contains(stdout+stderr, "Usage: "+tc.script) {
			t.Errorf("%s %q: exit %d, want %d with the usage\n%s%s", tc.script, tc.args, code, tc.want, stdout, stderr)
		}
		if tc.want == 2 && stdout != "" {
			t.Errorf("%s %q: usage on stdout for a bad command line", tc.script, tc.args)
		}
	}

	// iso-manager.sh -a with a relative path, from the caller's directory.
	if err := installertest.WriteArchive(filepath.Join(work, "isos", "mk"), "MetalK8s", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "wrappers.log")
	code, stdout, stderr := wrapper(t, work, script("iso-manager.sh"), rootEnv, "-a", "isos/mk", "--log-file", log, "--verbose")
	if code != 0 || !strings.Contains(stdout, "added     file /etc/systemd/system/fake-metalk8s-2.0.0.mount") {
		t.Fatalf("iso-manager.sh -a: %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "metalk8s-2.0.0: verified") {
		t.Errorf("--verbose did not reach the installer: %s", stderr)
	}
	state, _ := os.ReadFile(filepath.Join(root, installer.StatePath))
	if !strings.Contains(string(state), `"source": "`+filepath.Join(work, "isos", "mk")+`"`) {
		t.Errorf("relative path not resolved from the caller's directory:\n%s", state)
	}
	// --dry-run and --del=PATH.
	code, stdout, _ = wrapper(t, work, script("iso-manager.sh"), rootEnv, "--del=isos/mk", "--dry-run", "--log-file="+log)
	if code != 0 || !strings.Contains(stdout, "would be removed") {
		t.Fatalf("iso-manager.sh --del --dry-run: %d\n%s", code, stdout)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/fake-metalk8s-2.0.0.mount")); err != nil {
		t.Fatal("dry run removed the unit")
	}

	// solution-manager.sh uses the cluster's admin.conf when there is one.
	os.MkdirAll(filepath.Join(root, "etc/kubernetes"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/kubernetes/admin.conf"), []byte("apiVersion: v1\n"), 0o600)
	sol := filepath.Join(t.TempDir(), "example")
	installertest.WriteArchive(sol, "example-solution", "1.0.0")
	code, _, stderr = wrapper(t, work, script("solution-manager.sh"), rootEnv, "--add", sol, "--log-file", log)
	if code != 0 {
		t.Fatalf("solution-manager.sh --add: %d\n%s", code, stderr)
	}
	code, stdout, stderr = wrapper(t, work, script("solution-manager.sh"), append(rootEnv, "KUBECONFIG=/nonexistent/kubeconfig"), "-d", sol, "--log-file", log)
	if code != 0 || !strings.Contains(stdout, "removed   file /var/lib/metalk8s/installer/manifests/example-solution-1.0.0/deployed") {
		t.Fatalf("solution-manager.sh -d: %d\n%s%s", code, stdout, stderr)
	}

	// bootstrap.sh, run through a symbolic link from elsewhere: it still
	// finds the installer beside the real script.
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.list"), []byte("/isos/mk\n"), 0o644)
	installertest.WriteArchive(filepath.Join(root, "isos", "mk"), "MetalK8s", "2.0.0")
	link := filepath.Join(t.TempDir(), "bootstrap.sh")
	if err := os.Symlink(script("bootstrap.sh"), link); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = wrapper(t, work, link, rootEnv, "--log-file", log)
	if code != 0 || !strings.Contains(stdout, "unchanged") {
		t.Fatalf("bootstrap.sh through a link: %d\n%s%s", code, stdout, stderr)
	}

	// The log records each command line as the wrappers mapped it.
	data, _ := os.ReadFile(log)
	q := regexp.QuoteMeta
	for _, re := range []string{
		`metalk8s-installer --log-file ` + q(log) + ` --verbose --root ` + q(root) + ` archive add -- isos/mk \(root`,
		`metalk8s-installer --dry-run --log-file ` + q(log) + ` --root ` + q(root) + ` archive remove -- isos/mk \(root \S+, dry run\)`,
		`metalk8s-installer --log-file ` + q(log) + ` --kubeconfig ` + q(root) + `/etc/kubernetes/admin.conf --root ` + q(root) + ` solution add -- ` + q(sol),
		`metalk8s-installer --log-file ` + q(log) + ` --kubeconfig /nonexistent/kubeconfig --root ` + q(root) + ` solution remove -- ` + q(sol),
		`metalk8s-installer --log-file ` + q(log) + ` --root ` + q(root) + ` bootstrap \(root`,
	} {
		if !regexp.MustCompile(re).Match(data) {
			t.Errorf("log does not match %s:\n%s", re, data)
		}
	}
}

// Without the ISO's binary, the wrappers fall back to the RPM's, and say
// where they looked when neither is there.
func TestWrappersWithoutInstaller(t *testing.T) {
	if _, err := os.Stat("/usr/bin/metalk8s-installer"); err == nil {
		t.Skip("/usr/bin/metalk8s-installer is installed here: the wrappers would run it")
	}
	iso := isoRoot(t, "")
	for _, w := range wrappers {
		args := []string{"-a", "x"}
		if w == "bootstrap.sh" {
			args = nil
		}
		code, _, stderr := wrapper(t, t.TempDir(), filepath.Join(iso, w), nil, args...)
		if code != 1 || !strings.Contains(stderr, filepath.Join(iso, "bin", "metalk8s-installer")) || !strings.Contains(stderr, "/usr/bin/metalk8s-installer") {
			t.Errorf("%s without an installer: exit %d\n%s", w, code, stderr)
		}
	}
}

// The installer the ISO ships is built as the build does (gobin: static,
// reproducible flags), runs with no shared library, and the wrappers drive
// it: it reports its version, and fails on a missing ISO, naming it.
func TestStaticInstallerThroughWrappers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the installer")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "metalk8s-installer")
	if err := gobin.CompilePackage(context.Background(), gobin.Options{ProjectRoot: "../..", GOOS: "linux", GOARCH: runtime.GOARCH}, "./cmd/metalk8s-installer", bin); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the installer is dynamically linked (%v): it must run on any node and in the qemu initramfs", p.Type)
		}
	}
	f.Close()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "metalk8s-installer 2.") {
		t.Fatalf("version: %v %s", err, out)
	}
	// The metalk8s-installer RPM of packages/ ships this very binary,
	// now that packaging finds the CLI.
	clis, err := gobin.Discover("../..")
	if err != nil || !slices.Contains(clis, installer.Name) {
		t.Fatalf("gobin.Discover does not list %s: %v %v", installer.Name, clis, err)
	}
	spec, err := rpmbuild.Load("../../packages/metalk8s-installer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rpmFile := filepath.Join(dir, spec.FileName())
	var rpmData bytes.Buffer
	if err := spec.Build(&rpmData, rpmbuild.Options{Epoch: time.Unix(1700000000, 0), Binaries: map[string]string{installer.Name: bin}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rpmFile, rpmData.Bytes(), 0o644)
	tools := testenv.Need(t, "rpm", "bsdtar")
	if out, err := exec.Command(tools[0], "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]", rpmFile).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "-rwxr-xr-x /usr/bin/metalk8s-installer\n") {
		t.Fatalf("rpm -qp: %v\n%s", err, out)
	}
	x := t.TempDir()
	if out, err := exec.Command(tools[1], "-xf", rpmFile, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, out)
	}
	inRPM, _ := os.ReadFile(filepath.Join(x, "usr/bin/metalk8s-installer"))
	built, _ := os.ReadFile(bin)
	if !bytes.Equal(inRPM, built) {
		t.Fatalf("the RPM's /usr/bin/metalk8s-installer (%d bytes) is not the built installer (%d bytes)", len(inRPM), len(built))
	}

	iso := isoRoot(t, bin)
	root := t.TempDir()
	bash := testenv.Need(t, "bash")[0]
	c := exec.Command(bash, filepath.Join(iso, "iso-manager.sh"), "-a", "/nonexistent.iso")
	c.Env = append(os.Environ(), "METALK8S_INSTALLER_ROOT="+root)
	out, err = c.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "metalk8s-installer: archive add: archive lstat /nonexistent.iso: no such file") {
		t.Fatalf("iso-manager.sh -a with the real installer: %v\n%s", err, out)
	}
}
