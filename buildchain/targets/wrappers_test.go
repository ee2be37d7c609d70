package targets

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// wrapperProject is a project with wrapper scripts and, when withCLI, a
// tiny cmd/metalk8s-installer.
func wrapperProject(t *testing.T, withCLI bool) string {
	t.Helper()
	root := t.TempDir()
	t.Setenv("BUILD_ROOT", filepath.Join(root, "dist"))
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	os.MkdirAll(filepath.Join(root, WrappersDir), 0o755)
	for _, s := range []string{"bootstrap.sh", "iso-manager.sh"} {
		// 0644 in the checkout: the ISO gets 0755 regardless.
		writeFile(t, filepath.Join(root, WrappersDir, s), "#!/bin/bash\necho "+s+"\n")
	}
	if withCLI {
		writeFile(t, filepath.Join(root, "go.mod"), "module example.com/p\n\ngo 1.21\n")
		writeFile(t, filepath.Join(root, "go.sum"), "")
		os.MkdirAll(filepath.Join(root, "cmd", InstallerCLI), 0o755)
		writeFile(t, filepath.Join(root, "cmd", InstallerCLI, "main.go"), "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"installer here\") }\n")
	}
	return root
}

func TestInstallerWrappers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	root := wrapperProject(t, true)
	run := func() []step.Result {
		b, log := openSession(t, root)
		defer b.Close()
		if err := installerWrappers(context.Background(), b); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		return b.Engine.Results()
	}
	run()
	iso := filepath.Join(root, "dist", "root")
	for _, f := range []string{"bootstrap.sh", "iso-manager.sh", "bin/" + InstallerCLI} {
		fi, err := os.Stat(filepath.Join(iso, f))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("%s in the ISO root: %v %v", f, fi, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(iso, "iso-manager.sh")); string(b) != "#!/bin/bash\necho iso-manager.sh\n" {
		t.Errorf("iso-manager.sh: %q", b)
	}
	bin := filepath.Join(iso, "bin", InstallerCLI)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("installer built for %v, the nodes are x86_64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the ISO's installer is dynamically linked (%v)", p.Type)
		}
	}
	f.Close()
	if runtime.GOARCH == "amd64" {
		if out, err := exec.Command(bin).Output(); err != nil || string(out) != "installer here\n" {
			t.Errorf("running the ISO's installer: %q %v", out, err)
		}
	}

	for _, r := range run() {
		if r.Status != step.UpToDate {
			t.Errorf("no-op re-run: %s %s", r.Step, r.Status)
		}
	}
	writeFile(t, filepath.Join(root, WrappersDir, "bootstrap.sh"), "#!/bin/bash\necho edited\n")
	ran := map[string]step.Status{}
	for _, r := range run() {
		ran[r.Step] = r.Status
	}
	if ran["installer-wrappers"] != step.Ran || ran["binaries:linux/amd64"] != step.UpToDate {
		t.Errorf("editing a wrapper: %v", ran)
	}
	if b, _ := os.ReadFile(filepath.Join(iso, "bootstrap.sh")); !strings.Contains(string(b), "edited") {
		t.Errorf("edited wrapper not shipped: %q", b)
	}
}

// Wrappers without the installer they run are a missing part, named.
func TestInstallerWrappersWithoutCLI(t *testing.T) {
	root := wrapperProject(t, false)
	b, _ := openSession(t, root)
	defer b.Close()
	err := installerWrappers(context.Background(), b)
	if !errors.Is(err, build.ErrNotBuiltYet) || !strings.Contains(err.Error(), "cmd/metalk8s-installer") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "dist", "root", "bootstrap.sh")); err == nil {
		t.Fatal("wrappers shipped without their installer")
	}
}
