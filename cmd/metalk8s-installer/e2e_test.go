package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/mount"
	"github.com/metalk8s/buildchain/installer/serve"
	"github.com/metalk8s/buildchain/internal/cli/clitest"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

// metalk8sISO writes a small MetalK8s ISO as the buildchain lays one out:
// product.txt, one image in the skopeo dir: layout with its upstream
// name in versions.json, a yum repository of signed RPMs (rpmbuild,
// rpmsign, repogen) with its key, the registry template with the shared
// constants, written by the project's ISO writer (with its SHA256SUM).
func metalk8sISO(t *testing.T) (isoPath, image, digest string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "product.txt"), []byte("NAME=MetalK8s\nVERSION=2.0.0\nSHORT_VERSION=2.0\n"), 0o644)
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	cache := oci.Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	res, err := oci.StoreImage(oci.Image{Name: "coredns", Version: "1.3.1", Source: "k8s.mirror.invalid/coredns"}, img, cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := oci.WriteDir(filepath.Join(dir, "images", "coredns", "1.3.1"), res, cache); err != nil {
		t.Fatal(err)
	}
	vers := salttree.Versions{Packages: map[string]salttree.Package{}, Repositories: map[string]salttree.Repository{},
		Images:     map[string]salttree.Image{"coredns": {Name: "coredns", Version: "1.3.1", Digest: res.Image.Digest, Source: "k8s.mirror.invalid/coredns"}},
		Registries: []string{}}
	vers.MetalK8s.Version = "2.0.0"
	{
		const repo = "metalk8s-epel"
		key := rpmtest.GPGKey(t, "icli-repo", "rsa2048")
		signed := rpmtest.Sign(t, key, rpmtest.BuildRPMs(t, rpmtest.Standard()...), false)
		repoDir := filepath.Join(dir, "packages/redhat", repo)
		rpmtest.Copy(t, signed, repoDir)
		epoch := time.Unix(rpmtest.Epoch, 0)
		if _, err := repogen.Generate(context.Background(), repoDir, repogen.Options{Epoch: &epoch}); err != nil {
			t.Fatal(err)
		}
		keyName := "RPM-GPG-KEY-metalk8s-" + repo + "_1"
		os.WriteFile(filepath.Join(dir, "packages/redhat", keyName), key.Public, 0o644)
		vers.Repositories[repo] = salttree.Repository{GPGKeys: []string{keyName}}
	}
	data, _ := json.MarshalIndent(vers, "", "  ")
	os.MkdirAll(filepath.Join(dir, "salt", "metalk8s"), 0o755)
	os.WriteFile(filepath.Join(dir, serve.VersionsFile), data, 0o644)
	if err := solution.WriteRegistryConfig(dir, registrygen.WithConstants); err != nil {
		t.Fatal(err)
	}
	isoPath = filepath.Join(t.TempDir(), "metalk8s.iso")
	if _, err := iso.Write(context.Background(), isoPath, dir, iso.ProductOptions("MetalK8s 2.0.0", time.Unix(1700000000, 0))); err != nil {
		t.Fatal(err)
	}
	return isoPath, "metalk8s-2.0.0/coredns", res.Image.Digest
}

// solutionISO builds the example Solution (examples/solution) into an ISO
// with `solution build`'s code, its two images random ones in an OCI
// layout.
func solutionISO(t *testing.T) string {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	src := t.TempDir()
	ex := filepath.Join("..", "..", "examples", "solution")
	for _, f := range []string{"operator/deploy/operator.yaml", "operator/deploy/role.yaml", "operator/deploy/role_binding.yaml",
		"operator/deploy/service_account.yaml", "operator/deploy/crds/examples_crd.yaml", "ui/deployment.yaml"} {
		data, err := os.ReadFile(filepath.Join(ex, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755)
		os.WriteFile(filepath.Join(src, f), data, 0o644)
	}
	lp, err := layout.Write(filepath.Join(src, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"op", "ui"} {
		img, _ := random.Image(1024, 1)
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "solution.yaml"), []byte(`name: example-solution
version: 1.0.0
require_metalk8s: ">=2.0"
images:
  - {name: example-solution-operator, version: 1.0.0, oci: layout, ref: op}
  - {name: example-solution-ui, version: 1.0.0, oci: layout, ref: ui}
`), 0o644)
	out := filepath.Join(t.TempDir(), "example-solution-1.0.0.iso")
	var log strings.Builder
	if _, err := solution.BuildArchive(context.Background(), src, solution.BuildOptions{Output: out, CacheDir: t.TempDir(), Git: "e2e", Platform: "linux/amd64", Log: &log}); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	return out
}

// The host end to end of issue 12 (test 1), for a MetalK8s archive: the
// installer, as the ISO ships it, verifies the ISO, mounts it through
// FUSE (its own fuse-serve daemon), persists the mount, starts nginx with
// unprivileged workers, and skopeo pulls the image through it by digest;
// the same command again changes nothing; remove makes the registry
// answer 404, unmounts and removes the unit.
func TestHostEndToEnd(t *testing.T) {
	testenv.Short(t, "mounts an ISO through FUSE and starts nginx")
	skopeo := testenv.Need(t, "skopeo")[0]
	if nginx := testenv.Need(t, "nginx")[0]; nginx != "/usr/sbin/nginx" {
		t.Skipf("nginx is %s; the installer runs /usr/sbin/nginx", nginx)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skip("FUSE mounts need /dev/fuse and root")
	}
	isoPath, image, digest := metalk8sISO(t)
	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	mp := filepath.Join(root, "srv/scality/metalk8s-2.0.0")
	t.Cleanup(func() {
		serve.Stop(change.New(root, false))
		syscall.Unmount(mp, syscall.MNT_DETACH)
		syscall.Unmount(filepath.Join(root, "srv/scality/example-solution-1.0.0"), syscall.MNT_DETACH)
	})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	run := func(args ...string) (int, string) {
		t.Helper()
		return clitest.Run(t, append([]string{"--root", root, "--listen", listen, "--mount-method", "fuse"}, args...)...)
	}

	code, out := run("archive", "add", isoPath)
	if code != 0 {
		t.Fatalf("archive add: %d\n%s", code, out)
	}
	for _, want := range []string{"mount /srv/scality/metalk8s-2.0.0 (fuse", "nginx started", installer.StatePath} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	t.Logf("archive add:\n%s", out)
	if cur, err := mount.Current(mp); err != nil || cur == nil || cur.Method != mount.FUSE {
		t.Fatalf("mounted at %s: %+v %v", mp, cur, err)
	}
	units, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/metalk8s-fuse-*.service"))
	if len(units) != 1 {
		t.Errorf("persisted FUSE units: %v", units)
	}
	dst := t.TempDir()
	if o, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+listen+"/"+image+"@"+digest, "dir:"+dst).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy through the installer's nginx: %v\n%s", err, o)
	}
	// A containerd reading the generated hosts.toml pulls the image by its
	// upstream name and digest, served by the installer's nginx.
	addr := testenv.StartContainerd(t)
	ctr := testenv.Need(t, "ctr")[0]
	upstream := "k8s.mirror.invalid/coredns@" + digest
	if o, err := exec.Command(ctr, "--address", addr, "--namespace", "e2e", "images", "pull", "--hosts-dir", filepath.Join(root, "etc/containerd/certs.d"),
		"--snapshotter", "native", upstream).CombinedOutput(); err != nil {
		t.Fatalf("ctr pull %s through hosts.toml: %v\n%s", upstream, err, o)
	}
	if o, _ := exec.Command(ctr, "--address", addr, "--namespace", "e2e", "images", "list", "name=="+upstream).CombinedOutput(); !strings.Contains(string(o), digest) {
		t.Errorf("ctr images list %s:\n%s", upstream, o)
	}
	// dnf installs from the generated .repo file, gpgcheck on, the key
	// fetched from the served tree.
	tools := testenv.Need(t, "dnf", "rpm")
	installRoot, dnfCache := t.TempDir(), t.TempDir()
	if o, err := exec.Command(tools[0], "-y", "--installroot", installRoot, "--releasever", "7", "--setopt=reposdir="+filepath.Join(root, "etc/yum.repos.d"),
		"--setopt=cachedir="+dnfCache, "--setopt=install_weak_deps=False", "--setopt=gpgcheck=1", "install", "alpha").CombinedOutput(); err != nil {
		t.Fatalf("dnf install from the installer's repository: %v\n%s", err, o)
	}
	if q, _ := exec.Command(tools[1], "--root", installRoot, "-q", "alpha").CombinedOutput(); strings.Contains(string(q), "not installed") {
		t.Fatalf("rpm -q alpha: %s", q)
	}
	ps, _ := exec.Command("ps", "-o", "user=", "-C", "nginx").Output()
	if !strings.Contains(string(ps), "nobody") {
		t.Errorf("no nginx worker runs as nobody: %q", ps)
	}

	if code, out := run("archive", "add", isoPath); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("second archive add: %d\n%s", code, out)
	}

	// A Solution beside it: validated, mounted through FUSE, served, its
	// manifests rendered to a directory (no kubeconfig) with the UI's
	// image at the registry prefix; removed again, its registry answers
	// 404 and the MetalK8s archive still serves.
	sol := solutionISO(t)
	code, out = run("solution", "add", sol)
	if code != 0 || !strings.Contains(out, "mount /srv/scality/example-solution-1.0.0 (fuse") || !strings.Contains(out, "/etc/metalk8s/solutions.yaml") {
		t.Fatalf("solution add: %d\n%s", code, out)
	}
	manifests, _ := filepath.Glob(filepath.Join(root, "var/lib/metalk8s/installer/manifests/example-solution-1.0.0/*"))
	var rendered strings.Builder
	for _, m := range manifests {
		b, _ := os.ReadFile(m)
		rendered.Write(b)
	}
	if !strings.Contains(rendered.String(), listen+"/example-solution-1.0.0/example-solution-ui:1.0.0") || !strings.Contains(rendered.String(), "CustomResourceDefinition") {
		t.Errorf("rendered manifests %v do not point the UI at the registry prefix:\n%s", manifests, rendered.String())
	}
	solURL := "http://" + listen + "/v2/example-solution-1.0.0/example-solution-ui/manifests/1.0.0"
	waitStatus(t, solURL, http.StatusOK)
	if code, out := run("solution", "add", sol); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("second solution add: %d\n%s", code, out)
	}
	if code, out := run("solution", "remove", sol); code != 0 {
		t.Fatalf("solution remove: %d\n%s", code, out)
	}
	waitStatus(t, solURL, http.StatusNotFound)
	if cur, err := mount.Current(filepath.Join(root, "srv/scality/example-solution-1.0.0")); err != nil || cur != nil {
		t.Fatalf("Solution still mounted: %+v %v", cur, err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "var/lib/metalk8s/installer/manifests/example-solution-1.0.0/*")); len(left) != 0 {
		t.Errorf("manifests left after remove: %v", left)
	}
	waitStatus(t, "http://"+listen+"/v2/"+image+"/manifests/"+digest, http.StatusOK)

	if code, out := run("archive", "remove", isoPath); code != 0 {
		t.Fatalf("archive remove: %d\n%s", code, out)
	}
	waitStatus(t, "http://"+listen+"/v2/"+image+"/manifests/"+digest, http.StatusNotFound)
	if cur, err := mount.Current(mp); err != nil || cur != nil {
		t.Fatalf("still mounted after remove: %+v %v", cur, err)
	}
	if units, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/metalk8s-fuse-*")); len(units) != 0 {
		t.Errorf("units left after remove: %v", units)
	}
	if code, out := run("archive", "remove", isoPath); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("second archive remove: %d\n%s", code, out)
	}
}

// waitStatus waits until url answers want: an nginx reload is
// asynchronous (old workers finish, new ones start). A wait with a
// generous bound, not a timed assertion.
func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	got := 0
	for i := 0; i < 300; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if got = resp.StatusCode; got == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %d, want %d", url, got, want)
}
