package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/completeness"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/demo"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/rpm/fetch"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/buildchain/targets"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// projectRoot is the repository: the demo is named after its real lists
// and builds its real Salt tree, examples and local images.
var projectRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

var realLists = demo.Lists{
	ImagesFile:   filepath.Join(projectRoot, "images", "images.yaml"),
	PackagesFile: filepath.Join(projectRoot, "packages", "packages.yaml"),
}

// The demo end to end on the real project into a temporary build root:
// the ISO is written through the iso target with the completeness check
// failing the build on any problem, its product.txt reads back, every
// image of the real list is on it with the digest the upstream served,
// the repositories hold the real package names and versions signed by the
// key shipped beside them, and the upstream servers are gone afterwards.
func TestDemoEndToEnd(t *testing.T) {
	testenv.Short(t, "builds a whole ISO")
	testenv.Need(t, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(t, "nginx")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	t.Setenv("JOBS", "2")
	t.Setenv("PLATFORMS", "linux/amd64")
	cfg, err := config.Load(projectRoot)
	if err != nil {
		t.Fatal(err)
	}
	buildRoot := filepath.Join(t.TempDir(), "demo")
	var log bytes.Buffer
	const rpms = 40 // more than the real names: fillers ship too
	res, err := demo.Run(context.Background(), demo.Options{
		Cfg: cfg, BuildRoot: buildRoot, Seed: 1,
		Sizes: demo.Sizes{Images: 1, LayerBytes: 16 << 10, RPMs: rpms, RPMBytes: 1 << 10},
		Build: targets.Iso, Log: &log,
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, log.String())
	}
	// Until cmd/metalk8s-installer lands, its package is named missing
	// and the rest of the product is still built and checked.
	_, statErr := os.Stat(filepath.Join(projectRoot, "cmd", "metalk8s-installer"))
	var sum bytes.Buffer
	res.Print(&sum)
	if statErr != nil {
		if !errors.Is(res.Missing, build.ErrNotBuiltYet) || len(res.MissingParts) == 0 || !strings.Contains(strings.Join(res.MissingParts, "\n"), "metalk8s-installer") {
			t.Fatalf("the installer is not built yet, but the demo reports missing %v: %q", res.Missing, res.MissingParts)
		}
	} else if res.Missing != nil {
		t.Fatalf("missing: %v %q", res.Missing, res.MissingParts)
	}
	for _, m := range res.MissingParts {
		if !strings.Contains(sum.String(), m) {
			t.Errorf("the summary does not name %q:\n%s", m, sum.String())
		}
	}
	// The completeness check ran in its failing mode and found nothing.
	if res.Completeness != "" {
		t.Fatalf("completeness: %s", res.Completeness)
	}
	var rep completeness.Report
	data, err := os.ReadFile(filepath.Join(buildRoot, "completeness.json"))
	if err != nil {
		t.Fatalf("no completeness report: %v\n%s", err, log.String())
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Images != len(res.Upstreams.Images)+1 || rep.Packages == 0 {
		t.Fatalf("completeness report: %+v", rep)
	}

	pids := res.Upstreams.PIDs()
	if len(pids) != 2 {
		t.Fatalf("upstream process groups %v, want the registry's and nginx's", pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); err == nil {
			t.Errorf("upstream process group %d is still alive after the run", pid)
		}
	}
	if _, err := os.Stat(res.Upstreams.Dir); !os.IsNotExist(err) {
		t.Errorf("upstream data %s left behind: %v", res.Upstreams.Dir, err)
	}

	f, err := os.Open(res.ISO)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	im, err := iso.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	version, err := product.ReadVersion(filepath.Join(projectRoot, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Product, "VERSION="+version.String()+"\n") || !strings.Contains(res.Product, "NAME=MetalK8s\n") {
		t.Errorf("product.txt read back: %q", res.Product)
	}
	onISO, err := demo.ReadImages(context.Background(), im.FS())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, i := range onISO {
		got[i.Name+":"+i.Version] = i.Digest
	}
	// One image per entry of the real list, under its name and version.
	listData, _ := os.ReadFile(realLists.ImagesFile)
	real, err := oci.ParseList(realLists.ImagesFile, listData)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upstreams.Images) != len(real) {
		t.Fatalf("%d images pushed, the real list has %d", len(res.Upstreams.Images), len(real))
	}
	multi := 0
	for i, up := range res.Upstreams.Images {
		if up.Name != real[i].Name || up.Version != real[i].Version || up.Source != real[i].Source || up.Digest == real[i].Digest {
			t.Errorf("pushed %+v for the real %+v", up, real[i])
		}
		// Read independently of the demo's own summary, every blob checked.
		d, err := dirlayout.Read(context.Background(), im.FS(), "images/"+up.Name+"/"+up.Version, dirlayout.Options{VerifyBlobs: true})
		if err != nil {
			t.Errorf("image %s:%s on the ISO: %v", up.Name, up.Version, err)
			continue
		}
		if got[up.Name+":"+up.Version] != d.Manifests[0].Digest {
			t.Errorf("%s: the summary says %s, the directory %s", up.Name, got[up.Name+":"+up.Version], d.Manifests[0].Digest)
		}
		want := up.Digest
		if up.Platforms != nil { // one platform selected: resolved to it
			multi++
			want = up.Platforms["linux/amd64"]
		}
		if got[up.Name+":"+up.Version] != want {
			t.Errorf("image %s:%s on the ISO has digest %q, want %s", up.Name, up.Version, got[up.Name+":"+up.Version], want)
		}
	}
	if multi != 1 {
		t.Errorf("%d multi-platform images, want 1", multi)
	}
	if _, ok := got["metalk8s-utils:"+version.String()]; !ok {
		t.Errorf("the local image metalk8s-utils is not on the ISO: %v", got)
	}

	// The shipped repositories of the real packages.yaml; the external
	// ones only satisfied dependencies.
	repos := map[string]int{}
	for _, r := range res.Repos {
		repos[r.Name] = r.Packages
	}
	if repos["kubernetes"] != 4 || repos["saltstack"] != 2 || repos["epel"] < rpms-30 || repos["metalk8s"] < 1 || repos["extras"] < 3 || len(repos) != 5 {
		t.Errorf("repositories on the ISO: %v", res.Repos)
	}
	// versions.json holds the real versions, the epoch of container-selinux
	// included.
	var v salttree.Versions
	vdata, err := fs.ReadFile(im.FS(), "salt/metalk8s/versions.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(vdata, &v); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"kubelet": "1.12.10-0", "containerd": "1.2.4-1.el7", "container-selinux": "2:2.99-1.el7_6", "salt-minion": "2018.3.4-1.el7", "cri-tools": "1.13.0-0"} {
		p := v.Packages[name]
		evr := p.Version + "-" + p.Release
		if p.Epoch != "" {
			evr = p.Epoch + ":" + evr
		}
		if evr != want {
			t.Errorf("versions.json: %s is %q, want %s", name, evr, want)
		}
	}
	if _, err := fs.Stat(im.FS(), "examples/control-plane.yaml"); err != nil {
		t.Errorf("examples: %v", err)
	}
	// The upstream's packages on the ISO carry signatures by the key the
	// ISO ships beside them.
	keyData, err := fs.ReadFile(im.FS(), "packages/redhat/RPM-GPG-KEY-metalk8s-kubernetes_1")
	if err != nil {
		t.Fatal(err)
	}
	ring := &pgp.Keyring{}
	if err := ring.ReadKeys("demo key", keyData); err != nil {
		t.Fatal(err)
	}
	rpmFiles, _ := filepath.Glob(filepath.Join(buildRoot, "root", "packages", "redhat", "kubernetes", "*.rpm"))
	if len(rpmFiles) != 4 {
		t.Fatalf("kubernetes: %v", rpmFiles)
	}
	for _, p := range rpmFiles {
		if _, err := fetch.VerifyRPM(p, ring, time.Now()); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(buildRoot, "build-report.json")); err != nil {
		t.Errorf("no build report: %v", err)
	}

	// Served by the ISO's own installer: an image pulled with the ISO's
	// digest, and nothing of the node left mounted or running.
	sv := res.Served
	if sv == nil || sv.Skipped != "" {
		t.Fatalf("the ISO was not served: %+v\n%s", sv, log.String())
	}
	if sv.Method != "fuse" && sv.Method != "kernel" && sv.Method != "fuseiso" {
		t.Errorf("mount method %q", sv.Method)
	}
	shipped, err := fs.ReadFile(im.FS(), demo.ShippedInstaller)
	if err != nil {
		t.Fatal(err)
	}
	if run, err := os.ReadFile(sv.Installer); err != nil || !bytes.Equal(run, shipped) {
		t.Errorf("the installer run (%s) is not the ISO's %s: %v", sv.Installer, demo.ShippedInstaller, err)
	}
	ref := strings.TrimPrefix(sv.Image, strings.TrimPrefix(sv.URL, "http://")+"/metalk8s-"+version.String()+"/")
	if ref == sv.Image || got[ref] == "" || sv.Digest != got[ref] || sv.Blobs < 2 {
		t.Errorf("pulled %s (%s, %d blobs) from %s; the ISO has %q: %s", sv.Image, sv.Digest, sv.Blobs, sv.URL, ref, got[ref])
	}
	if !strings.HasSuffix(sv.Repomd, "/repodata/repomd.xml") {
		t.Errorf("repodata fetched: %q", sv.Repomd)
	}
	if !strings.Contains(sum.String(), sv.Digest) || !strings.Contains(sum.String(), "mount method "+sv.Method) {
		t.Errorf("the summary does not say what was served:\n%s", sum.String())
	}
	checkNodeClean(t, sv)
	t.Cleanup(func() { os.RemoveAll(sv.Root) }) // outside buildRoot when that is closed to nobody

	// The served phase failing after archive add (nothing to pull), and
	// interrupted once the ISO is served: the archive is removed and the
	// node cleaned all the same, and the error comes back.
	for _, interrupt := range []bool{false, true} {
		r := *res
		r.Served = nil
		ctx, cancel := context.WithCancel(context.Background())
		var lg bytes.Buffer
		w := io.Writer(&lg)
		if interrupt {
			w = &cancelOn{w: &lg, marker: "served on", cancel: cancel} // as SIGINT does
		} else {
			r.Images = nil
		}
		err := demo.ServeISO(ctx, &r, buildRoot, w)
		cancel()
		switch {
		case interrupt && !errors.Is(err, context.Canceled):
			t.Errorf("interrupted: got %v, want %v\n%s", err, context.Canceled, lg.String())
		case !interrupt && (err == nil || !strings.Contains(err.Error(), "no single-platform image")):
			t.Errorf("failing: got %v\n%s", err, lg.String())
		}
		if r.Served == nil || r.Served.Method == "" || !strings.Contains(lg.String(), "archive remove") {
			t.Errorf("interrupt=%v: the ISO was not served and removed before the end: %+v\n%s", interrupt, r.Served, lg.String())
			continue
		}
		checkNodeClean(t, r.Served)
		t.Cleanup(func() { os.RemoveAll(r.Served.Root) })
	}
}

// cancelOn cancels once marker is written.
type cancelOn struct {
	w      io.Writer
	marker string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(c.marker)) {
		c.cancel()
	}
	return c.w.Write(p)
}

// checkNodeClean fails when anything is mounted under the node's root
// (/proc/self/mountinfo) or a process of it still runs: its nginx, its
// FUSE server (their command lines name the root).
func checkNodeClean(t *testing.T, sv *demo.Served) {
	t.Helper()
	if sv.NginxPID <= 0 {
		t.Errorf("no nginx pid recorded for %s", sv.Root)
	} else if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sv.NginxPID)); err == nil && bytes.Contains(cmd, []byte("nginx")) {
		t.Errorf("the node's nginx %d still runs", sv.NginxPID)
	}
	left, err := demo.MountsUnder(sv.Root)
	if err != nil || len(left) > 0 {
		t.Errorf("mounted under %s after the run: %q %v", sv.Root, left, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if cmd, err := os.ReadFile(p); err == nil && bytes.Contains(cmd, []byte(sv.Root+"/")) {
			t.Errorf("%s still runs: %q", p, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		}
	}
}

// The upstreams stop with their workers: nothing answers signal 0.
func TestUpstreamsStop(t *testing.T) {
	testenv.Need(t, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(t, "nginx")
	}
	dir := filepath.Join(t.TempDir(), "up")
	u, err := demo.StartUpstreams(context.Background(), dir, realLists, 2, demo.Sizes{Images: 1, LayerBytes: 1024, RPMs: 2, RPMBytes: 128}, &bytes.Buffer{})
	if err != nil {
		u.Stop()
		t.Fatal(err)
	}
	pids := u.PIDs()
	if len(pids) != 2 {
		t.Fatalf("pids %v", pids)
	}
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); err == nil {
			t.Errorf("process group %d still alive", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", dir, err)
	}
}

// A failing or interrupted build still stops the upstreams and removes
// their data, and the error comes back as it was.
func TestDemoStopsOnFailure(t *testing.T) {
	testenv.Need(t, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(t, "nginx")
	}
	for _, interrupt := range []bool{false, true} {
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-demo\n"), 0o644)
		t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		cfg, err := config.Load(root)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ImagesFile, cfg.PackagesFile = realLists.ImagesFile, realLists.PackagesFile
		ctx, cancel := context.WithCancel(context.Background())
		boom := errors.New("boom")
		var alive []int
		res, err := demo.Run(ctx, demo.Options{
			Cfg: cfg, BuildRoot: filepath.Join(root, "dist", "demo"), Seed: 3,
			Sizes: demo.Sizes{Images: 1, LayerBytes: 1024, RPMs: 2, RPMBytes: 128},
			Build: func(ctx context.Context, b *build.Session) error {
				pkgs, _ := os.ReadFile(b.Cfg.PackagesFile)
				if b.Cfg.ImageMirrors["k8s.gcr.io"] == "" || !strings.Contains(string(pkgs), "baseurl: http://127.0.0.1:") {
					t.Errorf("the build runs without the demo's upstreams: %v\n%s", b.Cfg.ImageMirrors, pkgs)
				}
				if !interrupt {
					return boom
				}
				cancel() // as SIGINT does
				<-ctx.Done()
				return ctx.Err()
			},
			Log: &bytes.Buffer{},
		})
		cancel()
		want := boom
		if interrupt {
			want = context.Canceled
		}
		if !errors.Is(err, want) {
			t.Fatalf("interrupt=%v: got %v, want %v", interrupt, err, want)
		}
		if res.Upstreams == nil || len(res.Upstreams.PIDs()) != 2 {
			t.Fatalf("interrupt=%v: upstreams %+v", interrupt, res.Upstreams)
		}
		for _, pid := range res.Upstreams.PIDs() {
			if syscall.Kill(-pid, 0) == nil {
				alive = append(alive, pid)
			}
		}
		if len(alive) > 0 {
			t.Errorf("interrupt=%v: process groups %v still alive", interrupt, alive)
		}
		if _, err := os.Stat(res.Upstreams.Dir); !os.IsNotExist(err) {
			t.Errorf("interrupt=%v: %s left: %v", interrupt, res.Upstreams.Dir, err)
		}
	}
}

// The fixture is a function of the seed: two upstreams started from the
// same seed serve the same digests and packages, another seed others.
func TestFixtureDeterministic(t *testing.T) {
	testenv.Need(t, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(t, "nginx")
	}
	sizes := demo.Sizes{Images: 2, LayerBytes: 2048, RPMs: 2, RPMBytes: 256}
	digests := func(seed uint64) ([]string, []byte) {
		dir := filepath.Join(t.TempDir(), "up")
		u, err := demo.StartUpstreams(context.Background(), dir, realLists, seed, sizes, &bytes.Buffer{})
		defer u.Stop()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, im := range u.Images {
			out = append(out, im.Name+"@"+im.Digest)
		}
		key, err := os.ReadFile(filepath.Join(dir, "repos", "RPM-GPG-KEY-demo"))
		if err != nil {
			t.Fatal(err)
		}
		md, err := os.ReadFile(filepath.Join(dir, "repos", "kubernetes", "repodata", "repomd.xml"))
		if err != nil {
			t.Fatal(err)
		}
		return out, append(key, md...)
	}
	a, ka := digests(7)
	b, kb := digests(7)
	c, kc := digests(8)
	if strings.Join(a, " ") != strings.Join(b, " ") || !bytes.Equal(ka, kb) {
		t.Errorf("same seed, different fixture:\n%v\n%v", a, b)
	}
	if a[0] == c[0] || bytes.Equal(ka, kc) {
		t.Errorf("seeds 7 and 8 give the same fixture: %v", a)
	}
}
