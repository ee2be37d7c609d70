package salttree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/rpm/packaging"
	"github.com/metalk8s/buildchain/buildchain/step"
)

func TestParseNEVRA(t *testing.T) {
	p, err := ParseNEVRA("container-selinux-2:2.99-1.el7_6.noarch")
	if err != nil || p != (Package{Name: "container-selinux", Epoch: "2", Version: "2.99", Release: "1.el7_6", Arch: "noarch"}) {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"", "noarch", "a-1.x86_64", "a-b:1-2.x86_64", "-1-2.x86_64", "a-1-.x86_64"} {
		if _, err := ParseNEVRA(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// projectRoot is the repository: the tests check the real salt/ tree.
func projectRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// fixture writes a resolved.json holding every package the states pin,
// in the repositories packages.yaml puts them.
func fixture(t *testing.T, dir string) Options {
	res := packaging.Resolved{Repos: []packaging.ResolvedRepo{
		{Name: "kubernetes", Keys: []string{"k1", "k2"}, Packages: []packaging.ResolvedPkg{
			{NEVRA: "kubelet-1.12.10-0.x86_64"}, {NEVRA: "kubectl-1.12.10-0.x86_64"}, {NEVRA: "cri-tools-1.13.0-0.x86_64"}}},
		{Name: "epel", Keys: []string{"e"}, Packages: []packaging.ResolvedPkg{{NEVRA: "containerd-1.2.4-1.el7.x86_64"}}},
		{Name: "metalk8s", Packages: []packaging.ResolvedPkg{{NEVRA: "container-selinux-2:2.99-1.el7_6.noarch"}}},
	}}
	data, _ := json.Marshal(res)
	resolved := filepath.Join(dir, "resolved.json")
	if err := os.WriteFile(resolved, data, 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "salt")
	if err := os.CopyFS(src, os.DirFS(filepath.Join(projectRoot(t), "salt"))); err != nil {
		t.Fatal(err)
	}
	return Options{
		SaltDir: src, ImagesFile: filepath.Join(projectRoot(t), "images", "images.yaml"), ResolvedFile: resolved,
		Version: product.Version{Major: "2", Minor: "0", Patch: "0", Suffix: "-dev"},
		RootDir: filepath.Join(dir, "root"), Engine: step.New(filepath.Join(dir, "build"), nil),
	}
}

func statuses(e *step.Engine) map[string]step.Status {
	m := map[string]step.Status{}
	for _, r := range e.Results() {
		m[r.Step] = r.Status
	}
	return m
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	opts := fixture(t, dir)
	ctx := context.Background()
	if err := Build(ctx, opts); err != nil {
		t.Fatal(err)
	}
	var v Versions
	data, err := os.ReadFile(filepath.Join(opts.RootDir, "salt", "metalk8s", "versions.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if p := v.Packages["container-selinux"]; p.Epoch != "2" || p.Repo != "metalk8s" || p.Release != "1.el7_6" {
		t.Errorf("container-selinux: %+v", p)
	}
	if im := v.Images["pause"]; im.Version != "3.1" || !strings.HasPrefix(im.Digest, "sha256:") {
		t.Errorf("pause: %+v", im)
	}
	if strings.Join(v.Registries, " ") != "docker.io k8s.gcr.io quay.io" {
		t.Errorf("registries %v", v.Registries)
	}
	if k := v.Repositories["kubernetes"].GPGKeys; len(k) != 2 || k[1] != "RPM-GPG-KEY-metalk8s-kubernetes_2" {
		t.Errorf("keys %v", k)
	}
	top, _ := os.ReadFile(filepath.Join(opts.RootDir, "salt", "top.sls"))
	if !strings.HasPrefix(string(top), "# Generated") || !strings.Contains(string(top), "metalk8s-2.0.0-dev:\n") {
		t.Errorf("top.sls:\n%s", top)
	}
	for _, d := range []string{"salt", "pillar"} {
		filepath.WalkDir(filepath.Join(opts.RootDir, d), func(p string, e fs.DirEntry, err error) error {
			info, _ := e.Info()
			want := fs.FileMode(0o644)
			if e.IsDir() {
				want = 0o755 | fs.ModeDir
			}
			if info.Mode() != want {
				t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
			}
			return nil
		})
	}

	// Deterministic: a second tree from the same inputs is byte-identical.
	again := filepath.Join(dir, "again")
	vv, err := load(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(opts.SaltDir, filepath.Join(again, "salt"), filepath.Join(again, "pillar"), vv); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"salt/metalk8s/versions.json", "salt/top.sls", "pillar/metalk8s.sls", "salt/metalk8s/repo/init.sls"} {
		a, _ := os.ReadFile(filepath.Join(opts.RootDir, f))
		b, _ := os.ReadFile(filepath.Join(again, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between runs (or is empty)", f)
		}
	}

	// Nothing changed: up to date. One state changed: the step re-runs.
	opts.Engine = step.New(filepath.Join(dir, "build"), nil)
	if err := Build(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if s := statuses(opts.Engine)[StepName]; s != step.UpToDate {
		t.Fatalf("no-op re-run: %s", s)
	}
	sls := filepath.Join(opts.SaltDir, "metalk8s", "archives", "init.sls")
	old, _ := os.ReadFile(sls)
	os.WriteFile(sls, append(old, "\n# edited\n"...), 0o644)
	opts.Engine = step.New(filepath.Join(dir, "build"), nil)
	if err := Build(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if s := statuses(opts.Engine)[StepName]; s != step.Ran {
		t.Fatalf("after editing a state: %s", s)
	}
	got, _ := os.ReadFile(filepath.Join(opts.RootDir, "salt", "metalk8s", "archives", "init.sls"))
	if !strings.HasSuffix(string(got), "# edited\n") {
		t.Error("the edited state was not published")
	}
}

func TestBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	opts := fixture(t, dir)
	os.WriteFile(filepath.Join(opts.SaltDir, "top.sls"), []byte("x: y\n"), 0o644)
	if err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "generated by saltTree") {
		t.Fatalf("a hand-written top.sls: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.RootDir, "salt")); !os.IsNotExist(err) {
		t.Error("a failed run left root/salt behind")
	}
	os.Remove(filepath.Join(opts.SaltDir, "top.sls"))
	os.WriteFile(opts.ResolvedFile, []byte(`{"repos":[{"name":"a","packages":[{"nevra":"x-1-1.noarch"}]},{"name":"b","packages":[{"nevra":"x-2-1.noarch"}]}]}`), 0o644)
	if err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "x shipped twice") {
		t.Fatalf("a package in two repositories: %v", err)
	}
}

// A single-platform build serves an index's platform manifest: the digest
// versions.json records, and states pull by, is the served one, with the
// pinned upstream digest kept beside it.
func TestServedDigest(t *testing.T) {
	dir := t.TempDir()
	opts := fixture(t, dir)
	list, err := readList(opts.ImagesFile)
	if err != nil || len(list) == 0 {
		t.Fatalf("images list: %v", err)
	}
	im := list[0]
	imdir := filepath.Join(dir, "root", "images", im.Name, im.Version)
	os.MkdirAll(imdir, 0o755)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := sha256.Sum256(config)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"sha256:%x"},"layers":[]}`, len(config), cd))
	os.WriteFile(filepath.Join(imdir, "manifest.json"), manifest, 0o644)
	os.WriteFile(filepath.Join(imdir, "version"), []byte(dirlayout.Version), 0o644)
	os.WriteFile(filepath.Join(imdir, fmt.Sprintf("%x", cd)), config, 0o644)
	served := fmt.Sprintf("sha256:%x", sha256.Sum256(manifest))

	opts.ImagesDir = filepath.Join(dir, "root", "images")
	if err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var v Versions
	data, err := os.ReadFile(filepath.Join(opts.RootDir, "salt", "metalk8s", "versions.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	got := v.Images[im.Name]
	if got.Digest != served || got.SourceDigest != im.Digest {
		t.Fatalf("versions.json %s: digest %s source_digest %s, want %s and %s", im.Name, got.Digest, got.SourceDigest, served, im.Digest)
	}
	if other := v.Images[list[1].Name]; other.Digest != list[1].Digest || other.SourceDigest != "" {
		t.Fatalf("an image not on the ISO keeps its pinned digest: %+v", other)
	}
}
