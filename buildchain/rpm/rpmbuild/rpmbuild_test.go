package rpmbuild

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

var epoch = time.Unix(1700000000, 0).UTC()

func writeSpec(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool.sh"), []byte("#!/bin/sh\necho tool\n"), 0o644)
	p := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const demo = `name: demo
version: 1.2.3
release: 1.el7
arch: x86_64
summary: Demo package
description: A demo.
license: Apache-2.0
url: https://example.com/demo
requires: [demo-dep >= 1.0]
provides: [demo-api = 2]
dirs:
  - path: /opt/demo
    mode: "0750"
files:
  - path: /opt/demo/tool
    source: tool.sh
    mode: "0755"
  - path: /usr/bin/demo
    binary: demo
    mode: "0755"
  - path: /etc/demo.conf
    content: "key = value\n"
    config: true
scripts:
  post: "echo installed > /dev/null\n"
`

func build(t *testing.T, spec *Spec, opt Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := spec.Build(&b, opt); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestBuildIsReproducibleAndReadByRPM(t *testing.T) {
	rpm := testenv.Need(t, "rpm")[0]
	p := writeSpec(t, demo)
	spec, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "demo")
	os.WriteFile(bin, []byte("\x7fELF fake binary"), 0o755)
	key := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	signer, err := pgp.LoadSigner(key.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Epoch: epoch, Binaries: map[string]string{"demo": bin}, Sign: func(b []byte) ([]byte, error) { return signer.Sign(b, epoch) }}
	a, b := build(t, spec, opt), build(t, spec, opt)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same spec differ")
	}
	out := filepath.Join(t.TempDir(), spec.FileName())
	os.WriteFile(out, a, 0o644)

	q := func(args ...string) string {
		// stdout only: rpm warns on stderr that the signing key is unknown.
		o, err := exec.Command(rpm, append([]string{"-qp"}, append(args, out)...)...).Output()
		if err != nil {
			t.Fatalf("rpm -qp %v: %v\n%s", args, err, o)
		}
		return string(o)
	}
	files := strings.Fields(q("-l"))
	sort.Strings(files)
	if want := []string{"/etc/demo.conf", "/opt/demo", "/opt/demo/tool", "/usr/bin/demo"}; !reflect.DeepEqual(files, want) {
		t.Errorf("rpm -qpl: %v, want %v", files, want)
	}
	info := q("-i")
	for _, want := range []string{"Name        : demo", "Version     : 1.2.3", "Release     : 1.el7", "Architecture: x86_64", "License     : Apache-2.0"} {
		if !strings.Contains(info, want) {
			t.Errorf("rpm -qpi lacks %q:\n%s", want, info)
		}
	}
	if got := q("--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]"); !strings.Contains(got, "drwxr-x--- /opt/demo") || !strings.Contains(got, "-rwxr-xr-x /usr/bin/demo") {
		t.Errorf("modes:\n%s", got)
	}
	if got := q("--qf", "%{BUILDTIME}"); got != fmt.Sprint(epoch.Unix()) {
		t.Errorf("build time %s, want SOURCE_DATE_EPOCH", got)
	}
	if got := q("--requires"); !strings.Contains(got, "demo-dep >= 1.0") {
		t.Errorf("requires:\n%s", got)
	}
	if got := q("--provides"); !strings.Contains(got, "demo-api = 2") {
		t.Errorf("provides:\n%s", got)
	}
	if got := q("--scripts"); !strings.Contains(got, "echo installed") {
		t.Errorf("scripts:\n%s", got)
	}
	if got := q("-c"); !strings.Contains(got, "/etc/demo.conf") {
		t.Errorf("config files:\n%s", got)
	}

	// rpmkeys accepts the signature with the key imported, and only then.
	rpmkeys := testenv.Need(t, "rpmkeys")[0]
	db := t.TempDir()
	if o, err := exec.Command(rpmkeys, "--dbpath", db, "--checksig", out).CombinedOutput(); err == nil {
		t.Errorf("rpmkeys accepted the package without its key:\n%s", o)
	}
	if o, err := exec.Command(rpmkeys, "--dbpath", db, "--import", key.PublicPath).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if o, err := exec.Command(rpmkeys, "--dbpath", db, "--checksig", "-v", out).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --checksig: %v\n%s", err, o)
	} else if !strings.Contains(string(o), "Header V4 RSA/SHA256 Signature") {
		t.Errorf("rpmkeys did not check our header signature:\n%s", o)
	}
}

// TestDnfInstallsLocalPackage serves a repo with a built package and its
// dependency and has dnf install it into an installroot.
// A package with an epoch provides itself with it, as rpmbuild writes it,
// so that "name >= epoch:version" dependencies resolve to it.
func TestEpochSelfProvide(t *testing.T) {
	rpm := testenv.Need(t, "rpm")[0]
	spec, err := Load(writeSpec(t, "name: sel\nversion: \"2.99\"\nrelease: 1.el7\nepoch: 2\narch: noarch\nsummary: s\ndescription: d\nlicense: MIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), spec.FileName())
	os.WriteFile(out, build(t, spec, Options{Epoch: epoch}), 0o644)
	o, err := exec.Command(rpm, "-qp", "--provides", out).Output()
	if err != nil {
		t.Fatalf("rpm -qp --provides: %v", err)
	}
	if got := strings.Fields(strings.TrimSpace(string(o))); !reflect.DeepEqual(got, []string{"sel", "=", "2:2.99-1.el7"}) {
		t.Fatalf("provides %q, want only sel = 2:2.99-1.el7", o)
	}
}

func TestDnfInstallsLocalPackage(t *testing.T) {
	testenv.Short(t, "runs dnf")
	dnf := testenv.Need(t, "dnf")[0]
	repo := t.TempDir()
	for _, body := range []string{demo, strings.NewReplacer("name: demo\n", "name: demo-dep\n", "requires: [demo-dep >= 1.0]", "requires: []", "provides: [demo-api = 2]", "provides: []", "  - path: /opt/demo/tool\n    source: tool.sh\n", "  - path: /opt/dep/tool\n    source: tool.sh\n", "/usr/bin/demo\n    binary: demo", "/usr/bin/demo-dep\n    content: x", "/etc/demo.conf", "/etc/demo-dep.conf", "/opt/demo\n", "/opt/dep\n").Replace(demo)} {
		spec, err := Load(writeSpec(t, body))
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(t.TempDir(), "demo")
		os.WriteFile(bin, []byte("binary"), 0o755)
		os.WriteFile(filepath.Join(repo, spec.FileName()), build(t, spec, Options{Epoch: epoch, Binaries: map[string]string{"demo": bin}}), 0o644)
	}
	if _, err := repogen.Generate(t.Context(), repo, repogen.Options{Epoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// No shell in the empty installroot: scriptlets are skipped.
	out, err := exec.Command(dnf, "-y", "--installroot", root, "--releasever", "7", "--setopt=reposdir=/nonexistent",
		"--setopt=cachedir="+t.TempDir(), "--setopt=tsflags=noscripts", "--repofrompath", "local,file://"+repo,
		"--setopt=local.gpgcheck=0", "install", "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("dnf install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/demo", "opt/demo/tool", "etc/demo.conf", "opt/dep/tool"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "opt/demo")); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("/opt/demo mode: %v %v", st, err)
	}
}

func TestSpecErrorsNameFileAndLine(t *testing.T) {
	for body, want := range map[string]string{
		strings.Replace(demo, "version: 1.2.3", "version: 1.2-3", 1):                                                             ":1: version",
		strings.Replace(demo, `    mode: "0755"`+"\n  - path: /usr/bin/demo", `    mode: "0999"`+"\n  - path: /usr/bin/demo", 1): `:15: file /opt/demo/tool: mode "0999"`,
		strings.Replace(demo, "    binary: demo\n", "", 1):                                                                       ":18: file /usr/bin/demo: give exactly one",
		demo + "bogus: 1\n": `:26: unknown field "bogus"`,
		strings.Replace(demo, "    binary: demo\n", "    binary: demo\n    colour: red\n", 1): `:20: unknown field "colour"`,
		strings.Replace(demo, "version: 1.2.3", "version: &v 1.2.3", 1):                       ":2: YAML anchors and aliases are not allowed",
		demo + "---\nname: other\n": ":26: only one YAML document is allowed",
		strings.Replace(demo, "source: tool.sh", "source: ../../etc/passwd", 1): "must be inside",
	} {
		_, err := Load(writeSpec(t, body))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "demo.yaml") {
			t.Errorf("err = %v, want it to name demo.yaml and contain %q", err, want)
		}
	}
	spec, err := Load(writeSpec(t, demo))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := spec.Build(&b, Options{Epoch: epoch}); err == nil || !strings.Contains(err.Error(), `no CLI "demo"`) {
		t.Errorf("missing binary: %v", err)
	}
}

// TestProjectSpecs loads every spec under packages/ and builds those that
// need no CLI binary.
func TestProjectSpecs(t *testing.T) {
	specs, _ := filepath.Glob("../../../packages/*.yaml")
	n := 0
	for _, p := range specs {
		if filepath.Base(p) == "packages.yaml" {
			continue
		}
		s, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		bins := map[string]string{}
		for _, f := range s.Files {
			if f.Binary != "" {
				fake := filepath.Join(t.TempDir(), f.Binary)
				os.WriteFile(fake, []byte("stand-in binary"), 0o755)
				bins[f.Binary] = fake
			}
		}
		var b bytes.Buffer
		if err := s.Build(&b, Options{Epoch: epoch, Binaries: bins}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("found %d specs", n)
	}
}
