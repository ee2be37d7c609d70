package packaging

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// fixture lays out two upstream repositories: "upstream" (shipped,
// signed, served by nginx) with alpha, beta and delta, and "base"
// (external, file://) with gamma; and a local package spec.
type fixture struct {
	root, pkgFile, upstreamURL, baseDir string
	signKey                             *rpmtest.Key
}

func newFixture(t *testing.T, sets string) *fixture {
	t.Helper()
	createrepo := testenv.Need(t, "createrepo_c")[0]
	pkgKey := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	f := &fixture{root: t.TempDir(), signKey: rpmtest.GPGKey(t, "repo-signer", "rsa2048")}
	all := rpmtest.Sign(t, pkgKey, rpmtest.BuildRPMs(t, rpmtest.Standard()...), false)
	up := filepath.Join(f.root, "upstream")
	f.baseDir = filepath.Join(f.root, "base")
	for _, d := range []string{up, f.baseDir} {
		os.MkdirAll(d, 0o755)
	}
	ents, _ := os.ReadDir(all)
	for _, e := range ents {
		dst := up
		if strings.HasPrefix(e.Name(), "gamma") {
			dst = f.baseDir
		}
		data, _ := os.ReadFile(filepath.Join(all, e.Name()))
		os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644)
	}
	os.WriteFile(filepath.Join(up, "RPM-GPG-KEY-upstream"), pkgKey.Public, 0o644)
	for _, d := range []string{up, f.baseDir} {
		if out, err := exec.Command(createrepo, "--no-database", d).CombinedOutput(); err != nil {
			t.Fatalf("createrepo_c: %v\n%s", err, out)
		}
	}
	n := testenv.StartNginx(t, testenv.NginxConfig{Server: "root " + f.root + ";"})
	f.upstreamURL = n.URL + "/upstream/"
	pk := filepath.Join(f.root, "project", "packages")
	os.MkdirAll(pk, 0o755)
	os.WriteFile(filepath.Join(pk, "hello.yaml"), []byte(`name: hello-local
version: "1.0"
release: "1"
arch: noarch
summary: A locally built package
license: Apache-2.0
requires: [alpha]
files:
  - path: /usr/share/hello/README
    content: "hello\n"
`), 0o644)
	f.pkgFile = filepath.Join(pk, "packages.yaml")
	os.WriteFile(f.pkgFile, []byte(fmt.Sprintf(`repositories:
  - name: base
    kind: external
    baseurl: file://%s/
  - name: upstream
    kind: shipped
    baseurl: https://vault.example.invalid/upstream/
    gpgkeys: [%sRPM-GPG-KEY-upstream]
  - name: local
    kind: shipped
sets:
%s
local:
  - spec: hello.yaml
    repo: local
`, f.baseDir, f.upstreamURL, sets)), 0o644)
	return f
}

func (f *fixture) config(t *testing.T, buildRoot string) *config.Config {
	return &config.Config{
		ProjectRoot: filepath.Join(f.root, "project"), BuildRoot: buildRoot, SourceDateEpoch: rpmtest.Epoch + 500,
		Jobs: 2, PackagesFile: f.pkgFile, RepoSigningKey: f.signKey.SecretPath,
		// The baseurl in the file is unreachable: the mirror replaces it.
		RepoMirrors: map[string]string{"upstream": f.upstreamURL}, Values: map[string]string{},
	}
}

func runPackaging(t *testing.T, cfg *config.Config) ([]step.Result, error) {
	t.Helper()
	e := step.New(cfg.BuildRoot, io.Discard)
	err := BuildRepos(context.Background(), Options{
		ProjectRoot:    cfg.ProjectRoot,
		PackagesFile:   cfg.PackagesFile,
		RepoMirrors:    cfg.RepoMirrors,
		RepoSigningKey: cfg.RepoSigningKey,
		Epoch:          cfg.Epoch(),
		Jobs:           cfg.Jobs,
		CacheDir:       filepath.Join(cfg.BuildRoot, "cache", "rpm"),
		StateDir:       filepath.Join(cfg.BuildRoot, "packages"),
		OutDir:         filepath.Join(cfg.RootDir(), "packages", "redhat"),
		Engine:         e,
	})
	return e.Results(), err
}

func listTree(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.Contains(p, "/repodata/") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestPackagingEndToEnd(t *testing.T) {
	dnf := testenv.Need(t, "dnf")[0]
	f := newFixture(t, "  - name: node\n    packages:\n      - alpha = 2:1.0\n      - hello-local\n")
	br := t.TempDir()
	cfg := f.config(t, br)
	if _, err := runPackaging(t, cfg); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(br, "root", "packages", "redhat")
	want := []string{
		"RPM-GPG-KEY-metalk8s-local_1", "RPM-GPG-KEY-metalk8s-repodata", "RPM-GPG-KEY-metalk8s-upstream_1",
		"local/hello-local-1.0-1.noarch.rpm",
		"upstream/alpha-1.0-1.x86_64.rpm", "upstream/beta-1.2-3.el7.noarch.rpm",
	}
	if got := listTree(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("tree:\n got  %v\n want %v", got, want)
	}
	for _, r := range []string{"local", "upstream"} {
		if _, err := os.Stat(filepath.Join(out, r, "repodata", "repomd.xml.asc")); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}

	// A second run changes nothing and skips the populate step.
	res, err := runPackaging(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 || res[len(res)-1].Status != step.UpToDate {
		t.Errorf("second run: %+v", res)
	}

	// Another build root gives the same bytes.
	br2 := t.TempDir()
	if _, err := runPackaging(t, f.config(t, br2)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"upstream/repodata/repomd.xml", "local/repodata/repomd.xml", "local/hello-local-1.0-1.noarch.rpm", "upstream/repodata/repomd.xml.asc"} {
		a, _ := os.ReadFile(filepath.Join(out, p))
		b, _ := os.ReadFile(filepath.Join(br2, "root", "packages", "redhat", p))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs between two build roots", p)
		}
	}

	// dnf installs from what we produced plus the external base repo,
	// checking packages and repodata signatures with the shipped keys.
	conf := filepath.Join(t.TempDir(), "dnf.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[main]
reposdir=/nonexistent
cachedir=%[1]s
install_weak_deps=False
[base]
name=base
baseurl=file://%[2]s/
gpgcheck=0
[upstream]
name=upstream
baseurl=file://%[3]s/upstream/
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://%[3]s/RPM-GPG-KEY-metalk8s-upstream_1 file://%[3]s/RPM-GPG-KEY-metalk8s-repodata
[local]
name=local
baseurl=file://%[3]s/local/
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://%[3]s/RPM-GPG-KEY-metalk8s-local_1
`, t.TempDir(), f.baseDir, out)), 0o644)
	root := t.TempDir()
	if o, err := exec.Command(dnf, "-y", "-c", conf, "--installroot", root, "--releasever", "7", "install", "hello-local").CombinedOutput(); err != nil {
		t.Fatalf("dnf install: %v\n%s", err, o)
	}
	q, _ := exec.Command("rpm", "--root", root, "-qa", "--qf", "%{NAME}\n").Output()
	got := strings.Fields(string(q))
	sort.Strings(got)
	if want := []string{"alpha", "beta", "gamma", "gpg-pubkey", "gpg-pubkey", "hello-local"}; !reflect.DeepEqual(got, want) {
		t.Errorf("installed %v, want %v", got, want)
	}
	_ = repogen.Options{}
}

func TestPackagingErrors(t *testing.T) {
	f := newFixture(t, "  - name: node\n    packages:\n      - alpha = 9.9\n")
	_, err := runPackaging(t, f.config(t, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), `package set "node"`) || !strings.Contains(err.Error(), "available versions: 2:1.0-1") || !strings.Contains(err.Error(), "packages.yaml") {
		t.Fatalf("bad pin: %v", err)
	}
	// A dependency nobody provides: the chain names set, package and need.
	os.Remove(filepath.Join(f.baseDir, "gamma-0.1-1.x86_64.rpm"))
	if out, err := exec.Command("createrepo_c", "--no-database", f.baseDir).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	os.WriteFile(f.pkgFile, []byte(strings.Replace(mustRead(t, f.pkgFile), "alpha = 9.9", "hello-local", 1)), 0o644)
	_, err = runPackaging(t, f.config(t, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "requested hello-local-1.0-1.noarch -> alpha-2:1.0-1.x86_64 (for hello-local requires alpha)") || !strings.Contains(err.Error(), "nothing provides /usr/sbin/gamma-helper") {
		t.Fatalf("missing dependency: %v", err)
	}
	// A malformed repomd.xml names the repo.
	os.WriteFile(filepath.Join(f.root, "upstream", "repodata", "repomd.xml"), []byte("<repomd><data"), 0o644)
	_, err = runPackaging(t, f.config(t, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "repo upstream") || !strings.Contains(err.Error(), "repomd.xml") {
		t.Fatalf("malformed repomd: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
