package completeness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/imagebuild"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/rpm/depsolve"
	"github.com/metalk8s/buildchain/buildchain/rpm/packaging"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/internal/testenv"
)

const digest = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e"

func python(t *testing.T) string {
	t.Helper()
	py, err := salttree.Python()
	if err != nil {
		if testenv.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return py
}

// repo builds the RPMs of specs with the real rpmbuild into dir and
// indexes them with the real createrepo_c.
func repo(t *testing.T, dir string, specs ...rpmtest.Spec) {
	t.Helper()
	createrepo := testenv.Need(t, "createrepo_c")[0]
	rpmtest.Copy(t, rpmtest.BuildRPMs(t, specs...), dir)
	if out, err := exec.Command(createrepo, "--no-database", dir).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
}

func pkg(name, arch, body string) rpmtest.Spec {
	return rpmtest.Spec{Name: name, Version: "1.0", Release: "1", Arch: arch, Body: body}
}

// tree writes a complete ISO root: the project's real Salt tree with a
// versions.json of the real images/images.yaml, a directory for each of
// its images and for each image built locally (images/*/image.yaml), an
// example manifest that refers to one more image through the Bootstrap
// registry, and a shipped repository whose containerd needs a package of
// an external repository. extra adds packages to versions.json and to the
// shipped repository.
func tree(t *testing.T, extra ...rpmtest.Spec) (root string, external []depsolve.Repo) {
	t.Helper()
	root = t.TempDir()
	v, onISO := realVersions(t)
	v.Images["example-web"] = salttree.Image{Name: "example-web", Version: "1.0", Digest: digest, Source: "docker.io/example/web"}
	onISO = append(onISO, "example-web/1.0")
	v.Repositories["metalk8s"] = salttree.Repository{GPGKeys: []string{}}
	specs := []rpmtest.Spec{
		pkg("containerd", "x86_64", "Requires: container-selinux\nRequires: libseccomp\n"),
		pkg("container-selinux", "noarch", ""),
		pkg("kubelet", "x86_64", ""), pkg("kubectl", "x86_64", ""), pkg("cri-tools", "x86_64", ""),
	}
	specs = append(specs, extra...)
	for _, s := range specs {
		v.Packages[s.Name] = salttree.Package{Name: s.Name, Version: s.Version, Release: s.Release, Arch: s.Arch, Repo: "metalk8s"}
	}
	if err := salttree.Write(filepath.Join(projectRoot, "salt"), filepath.Join(root, "salt"), filepath.Join(root, "pillar"), v); err != nil {
		t.Fatal(err)
	}
	repo(t, filepath.Join(root, "packages", "redhat", "metalk8s"), specs...)
	ext := filepath.Join(t.TempDir(), "base")
	repo(t, ext, pkg("libseccomp", "x86_64", ""))
	r, err := FetchRepo(context.Background(), nil, "base", "file://"+ext)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range onISO {
		dir := filepath.Join(root, "images", filepath.FromSlash(im))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "version"), []byte("Directory Transport Version: 1.1\n"), 0o644)
	}
	write(t, root, "examples/deploy.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: metalk8s-2.0.0-dev/example-web:1.0\n")
	return root, []depsolve.Repo{r}
}

var projectRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// realVersions is the versions.json of the project's real image lists,
// for the product version 2.0.0-dev, with no packages; and the image
// directories (name/version) the ISO holds for them: one per entry of
// images/images.yaml and one per image built locally.
func realVersions(t *testing.T) (*salttree.Versions, []string) {
	t.Helper()
	file := filepath.Join(projectRoot, "images", "images.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	list, err := oci.ParseList(file, data)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := product.ParseVersion("VERSION", []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := salttree.Compute(ver, list, packaging.Resolved{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var onISO []string
	for _, im := range list {
		onISO = append(onISO, im.Name+"/"+im.Version)
	}
	defs, err := imagebuild.LoadDir(filepath.Join(projectRoot, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) == 0 {
		t.Fatal("no local image definition under images/")
	}
	for _, d := range defs {
		tag, err := d.ResolveVersion(ver.String())
		if err != nil {
			t.Fatal(err)
		}
		onISO = append(onISO, d.Name+"/"+tag)
	}
	return v, onISO
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, root string, external []depsolve.Repo) *Report {
	t.Helper()
	r, err := Check(context.Background(), Options{Root: root, Python: python(t), External: external})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantFailure(t *testing.T, r *Report, names ...string) {
	t.Helper()
	err := r.Err()
	if err == nil {
		t.Fatalf("an incomplete root passes: %+v", r)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("the error does not name %q:\n%v", n, err)
		}
	}
}

// The product is complete: the real Salt tree refers to every image of the
// real images/images.yaml and to every image built locally, and to
// nothing else, so the real `go run mage.go iso` passes this check given
// mirrors that serve those images. No network: the image directories are
// stand-ins, the check reads only their names.
func TestRealListsComplete(t *testing.T) {
	root, ext := tree(t)
	r := check(t, root, ext)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	// Every image of the real lists, and the example's.
	if _, onISO := realVersions(t); r.Images != len(onISO)+1 || r.References < r.Images || r.Packages != 5 {
		t.Fatalf("checked %d images, %d references, %d packages; want %d, at least as many, 5", r.Images, r.References, r.Packages, len(onISO)+1)
	}
}

func TestMissingImage(t *testing.T) {
	root, ext := tree(t)
	write(t, root, "examples/cache.yaml", "kind: Pod\nspec:\n  containers:\n    - image: docker.io/library/redis:5.0\n")
	// A state's reference to an image whose directory is not on the ISO.
	os.RemoveAll(filepath.Join(root, "images", "pause"))
	r := check(t, root, ext)
	wantFailure(t, r, "docker.io/library/redis:5.0 (referenced in examples/cache.yaml)", "k8s.gcr.io/pause:3.1")
	// redis in its manifest, pause in the containerd state and in the
	// template it renders.
	if len(r.Missing) != 3 || len(r.Unused) != 0 {
		t.Fatalf("missing %+v, unused %v", r.Missing, r.Unused)
	}
	for _, m := range r.Missing[1:] {
		if m.Ref != "k8s.gcr.io/pause:3.1" || !strings.HasPrefix(m.File, "salt/metalk8s/container-engine/containerd/") {
			t.Errorf("the pause reference is not traced to the containerd state: %+v", m)
		}
	}
}

func TestUnusedImage(t *testing.T) {
	root, ext := tree(t)
	os.MkdirAll(filepath.Join(root, "images", "extra", "9.9"), 0o755)
	r := check(t, root, ext)
	wantFailure(t, r, "unused image: images/extra/9.9")
	if len(r.Unused) != 1 || len(r.Missing) != 0 {
		t.Errorf("unused %v, missing %v", r.Unused, r.Missing)
	}
}

// An image listed in versions.json but used by no state or manifest is
// unused: versions.json is the list of what ships, not a use of it.
func TestVersionsJSONIsNoReference(t *testing.T) {
	root, ext := tree(t)
	os.Remove(filepath.Join(root, "examples", "deploy.yaml"))
	wantFailure(t, check(t, root, ext), "unused image: images/example-web/1.0")
}

func TestUninstallablePackage(t *testing.T) {
	root, ext := tree(t, pkg("broken", "x86_64", "Requires: libmissing >= 2\n"))
	r := check(t, root, ext)
	wantFailure(t, r, "uninstallable package: broken-1.0-1", "libmissing >= 2")
	if len(r.Uninstallable) != 1 {
		t.Errorf("uninstallable: %+v", r.Uninstallable)
	}
	// Without the external repository, containerd's base OS dependency
	// is missing too, and named.
	r = check(t, root, nil)
	wantFailure(t, r, "containerd-1.0-1", "libseccomp")
}
