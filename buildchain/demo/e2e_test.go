package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/demo"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/buildchain/targets"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

// e2eSizes keep the shared ISO small: a few hundred KiB, built in seconds.
var e2eSizes = demo.Sizes{Images: 3, LayerBytes: 32 << 10, RPMs: 3, RPMBytes: 4 << 10}

// e2eProject is a copy of this repository as `go run mage.go demo` sees
// it, whatever it holds today: the lists, the Salt tree, the examples and
// the sources of the CLIs the ISO ships, which the build compiles. It is a
// copy so that a test may edit it; only the VERSION is the test's own.
func e2eProject(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	entries, err := os.ReadDir(projectRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case ".git", "dist", "bench", "docs", "vagrant", ".env":
			continue
		}
		src, dst := filepath.Join(projectRoot, e.Name()), filepath.Join(root, e.Name())
		if e.IsDir() {
			err = os.CopyFS(dst, os.DirFS(src))
		} else if e.Type().IsRegular() {
			var data []byte
			if data, err = os.ReadFile(src); err == nil {
				err = os.WriteFile(dst, data, 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-e2e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	t.Setenv("JOBS", "2")
	// Both platforms of the demo's multi-platform image: the ISO keeps
	// the index, so the registry checks cover an index and its children.
	t.Setenv("PLATFORMS", "linux/amd64,linux/arm64/v8")
	return root
}

// signedE2EProject is e2eProject with the demo's upstream programs found
// and ISO_SIGNING_KEY set to a throwaway key, as a release build signs.
func signedE2EProject(t testing.TB) string {
	t.Helper()
	testenv.Need(t, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(t, "nginx")
	}
	root := e2eProject(t)
	key := rpmtest.GPGKey(t, "e2e-iso", "ed25519")
	t.Setenv("ISO_SIGNING_KEY", key.SecretPath)
	return root
}

// runDemo runs the demo on project root, calling whileUp with the build
// session after the iso target succeeded, while the upstreams still serve.
func runDemo(t testing.TB, root string, sizes demo.Sizes, whileUp func(ctx context.Context, b *build.Session)) *demo.Result {
	t.Helper()
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	called := false
	res, err := demo.Run(context.Background(), demo.Options{
		Cfg: cfg, BuildRoot: filepath.Join(root, "dist", "demo"), Seed: 11, Sizes: sizes, Log: &log,
		Build: func(ctx context.Context, b *build.Session) error {
			// `go run mage.go iso` must complete on the demo's upstreams:
			// nothing missing, nothing failing.
			if err := targets.Iso(ctx, b); err != nil {
				return err
			}
			called = true
			whileUp(ctx, b)
			return nil
		},
	})
	if err != nil || res.Missing != nil {
		t.Fatalf("demo: %v (missing: %v)\n%s", err, res.Missing, log.String())
	}
	if !called {
		t.Fatalf("the demo did not build\n%s", log.String())
	}
	return res
}

// syncBuffer is a log the demo and the build's steps write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// e2eISO is the built demo ISO, as the checks read it.
type e2eISO struct {
	cfg       *config.Config // the build's configuration, as the demo set it
	path      string
	registry  string // metalk8s-<version>: the name prefix MetalK8s serves images under
	image     *iso.Image
	manifest  []isomanifest.Entry
	files     map[string]int64 // every regular file, by the project's reader
	versions  salttree.Versions
	tree      string // the ISO, extracted with the project's reader
	isoPubKey string // the public part of ISO_SIGNING_KEY
}

func openE2E(t *testing.T, b *build.Session) *e2eISO {
	t.Helper()
	e := &e2eISO{cfg: b.Cfg, path: b.IsoPath(), files: map[string]int64{}}
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	e.registry = "metalk8s-" + info.Version.String()
	f, err := os.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if e.image, err = iso.Open(f, st.Size()); err != nil {
		t.Fatal(err)
	}
	fsys := e.image.FS()
	data, err := fs.ReadFile(fsys, isomanifest.Name)
	if err != nil {
		t.Fatal(err)
	}
	if e.manifest, err = isomanifest.Parse(isomanifest.Name, data); err != nil {
		t.Fatal(err)
	}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %v is not a regular file", p, fi.Mode())
		}
		e.files[p] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The baseline every other reader is held to: the project's reader
	// and the in-ISO manifest agree, file by file.
	if err := isomanifest.VerifyFS(fsys); err != nil {
		t.Fatalf("the project's reader against the in-ISO manifest: %v", err)
	}
	vj, err := fs.ReadFile(fsys, "salt/metalk8s/versions.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(vj, &e.versions); err != nil {
		t.Fatalf("versions.json: %v", err)
	}
	if len(e.versions.Images) == 0 || len(e.versions.Packages) == 0 {
		t.Fatalf("versions.json names no image or no package:\n%s", vj)
	}
	e.tree = t.TempDir()
	if err := os.CopyFS(e.tree, fsys); err != nil {
		t.Fatal(err)
	}
	if e.cfg.IsoSigningKey == "" {
		t.Fatal("the build has no ISO_SIGNING_KEY")
	}
	signer, err := pgp.LoadSigner(e.cfg.IsoSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.PublicKeyArmored()
	if err != nil {
		t.Fatal(err)
	}
	e.isoPubKey = filepath.Join(t.TempDir(), "iso-key.asc")
	if err := os.WriteFile(e.isoPubKey, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestE2E builds the demo ISO once, offline, through the iso target, and
// checks the product with the real programs a user and a node use.
func TestE2E(t *testing.T) {
	testenv.Short(t, "builds the demo ISO and reads it with real tools and a real kernel")
	root := signedE2EProject(t)
	var e *e2eISO
	res := runDemo(t, root, e2eSizes, func(ctx context.Context, b *build.Session) {
		e = openE2E(t, b)
		t.Run("readers", func(t *testing.T) { checkReaders(t, e) })
		t.Run("registry", func(t *testing.T) { checkRegistry(t, e) })
		// While the demo's upstreams serve: the external repository a
		// node reaches over the network supplies the dependencies.
		t.Run("dnf", func(t *testing.T) { checkDnf(t, e) })
		t.Run("signatures", func(t *testing.T) { checkSignatures(t, e) })
		t.Run("kernel", func(t *testing.T) { checkKernel(t, e) })
	})
	// The demo's own read-back is the project's reader's.
	if p, err := fs.ReadFile(e.image.FS(), "product.txt"); err != nil || string(p) != res.Product {
		t.Errorf("the demo read product.txt %q, the ISO holds %q (%v)", res.Product, p, err)
	}
}

// run runs a program and returns its standard output, failing the test
// with everything it said when it fails.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// checkReaders: isoinfo, bsdtar and 7z each find every file of the ISO,
// with its size (and, where they extract, its content), and isoinfo
// reads product.txt without mounting, as the project's reader does.
func checkReaders(t *testing.T, e *e2eISO) {
	bins := testenv.Need(t, "isoinfo", "bsdtar", "7z")
	want, err := fs.ReadFile(e.image.FS(), "product.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, "", bins[0], "-i", e.path, "-x", "/PRODUCT.TXT;1"); got != string(want) {
		t.Errorf("isoinfo -x /PRODUCT.TXT;1 gives %q, the project's reader %q", got, want)
	}
	d := run(t, "", bins[0], "-d", "-i", e.path)
	if vol := "Volume id: MetalK8s " + strings.TrimPrefix(e.registry, "metalk8s-"); !strings.Contains(d, vol+"\n") {
		t.Errorf("isoinfo -d lacks %q:\n%s", vol, d)
	}
	for _, view := range []string{"-R", "-J"} {
		got := isoinfoFiles(t, run(t, "", bins[0], view, "-l", "-i", e.path))
		sameFiles(t, "isoinfo "+view+" -l", e.files, got)
	}

	// Extracted, every file is checked against the in-ISO manifest:
	// sizes, SHA-256, nothing missing, nothing extra.
	x := t.TempDir()
	run(t, "", bins[1], "-xf", e.path, "-C", x)
	if err := isomanifest.VerifyFS(os.DirFS(x)); err != nil {
		t.Errorf("bsdtar -xf, against the in-ISO manifest: %v", err)
	}
	x7 := t.TempDir()
	run(t, "", bins[2], "x", "-y", "-o"+x7, e.path)
	if err := isomanifest.VerifyFS(os.DirFS(x7)); err != nil {
		t.Errorf("7z x, against the in-ISO manifest: %v", err)
	}
	got7 := map[string]int64{}
	var cur string
	for _, line := range strings.Split(run(t, "", bins[2], "l", "-slt", e.path), "\n") {
		if p, ok := strings.CutPrefix(line, "Path = "); ok {
			cur = p
		}
		if f, ok := strings.CutPrefix(line, "Folder = "); ok && f == "+" {
			cur = ""
		}
		if s, ok := strings.CutPrefix(line, "Size = "); ok && cur != "" && cur != e.path {
			got7[cur], _ = strconv.ParseInt(s, 10, 64)
			cur = ""
		}
	}
	sameFiles(t, "7z l", e.files, got7)
}

// isoinfoFiles reads the regular files, with their sizes, of an
// `isoinfo -l` listing.
func isoinfoFiles(t *testing.T, out string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	dir := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "Directory listing of /"); ok {
			dir = d
			continue
		}
		if !strings.HasPrefix(line, "-") {
			continue
		}
		// -rw-r--r--   1    0    0     115 Nov 14 2023 [    343 00]  product.txt
		_, name, ok := strings.Cut(line, "]  ")
		f := strings.Fields(line)
		if !ok || len(f) < 5 {
			t.Fatalf("isoinfo line %q", line)
		}
		size, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			t.Fatalf("isoinfo line %q: %v", line, err)
		}
		files[dir+strings.TrimSuffix(name, " ")] = size
	}
	return files
}

// sameFiles compares the files a tool lists with what the project's
// reader finds.
func sameFiles(t testing.TB, tool string, want, got map[string]int64) {
	t.Helper()
	var diffs []string
	for p, n := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != n {
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes, want %d", p, g, n))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s disagrees with the project's reader:\n  %s", tool, strings.Join(diffs, "\n  "))
	}
}

// isoImage is one image directory of the ISO.
type isoImage struct {
	name, version, digest string
	// children are the manifest digests an index lists.
	children []string
}

func isoImages(t *testing.T, e *e2eISO) []isoImage {
	t.Helper()
	var out []isoImage
	err := dirlayout.Walk(context.Background(), e.image.FS(), "images", dirlayout.Options{}, func(d *dirlayout.Dir) error {
		rel := strings.TrimPrefix(d.Path, "images/")
		im := isoImage{name: path.Dir(rel), version: path.Base(rel), digest: d.Manifests[0].Digest}
		for _, m := range d.Manifests[1:] {
			im.children = append(im.children, m.Digest)
		}
		out = append(out, im)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no image on the ISO")
	}
	return out
}

// checkRegistry serves the ISO's images/ with the ISO's own registry
// config, rendered as MetalK8s renders it, from an nginx whose workers
// are not root, and copies every image, tag and digest, every platform of
// an index, with skopeo, checking what arrives against the ISO.
func checkRegistry(t *testing.T, e *e2eISO) {
	skopeo := testenv.Need(t, "skopeo")[0]
	user := testenv.UnprivilegedUser(t)
	imagesDir := mountImages(t, e)
	tmpl, err := fs.ReadFile(e.image.FS(), targets.RegistryConfigTemplate)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(registrygen.RepositoryPlaceholder, e.registry, registrygen.RegistryRootPlaceholder, imagesDir).Replace(string(tmpl))
	if strings.Contains(conf, "{{") || strings.Contains(conf, "{%") {
		t.Fatalf("the registry config holds Jinja beyond the two placeholders MetalK8s sets:\n%s", conf)
	}
	n := testenv.StartNginx(t, testenv.NginxConfig{User: user, Server: conf})
	if uids := workerUIDs(t, nginxMaster(t, n)); len(uids) == 0 || slices.Contains(uids, "0") {
		t.Fatalf("nginx workers run as uids %v, want %s", uids, user)
	}
	host := fmt.Sprintf("127.0.0.1:%d", n.Port)

	inISO := map[string]bool{}
	for _, im := range isoImages(t, e) {
		inISO[im.name+":"+im.version] = true
		ref := "docker://" + host + "/" + e.registry + "/" + im.name
		for _, by := range []string{":" + im.version, "@" + im.digest} {
			dst := filepath.Join(t.TempDir(), "img")
			run(t, "", skopeo, "copy", "--all", "--src-tls-verify=false", ref+by, "dir:"+dst)
			top, err := os.ReadFile(filepath.Join(dst, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if got := digestOf(top); got != im.digest {
				t.Errorf("%s%s: skopeo got manifest %s, the ISO has %s", ref, by, got, im.digest)
			}
			// Each platform of an index: its manifest, and through it
			// every blob, checked by skopeo against the digests.
			for _, c := range im.children {
				m, err := os.ReadFile(filepath.Join(dst, strings.TrimPrefix(c, "sha256:")+".manifest.json"))
				if err != nil {
					t.Errorf("%s%s: platform manifest %s not copied: %v", ref, by, c, err)
				} else if digestOf(m) != c {
					t.Errorf("%s%s: platform manifest %s has digest %s", ref, by, c, digestOf(m))
				}
			}
			// Every blob skopeo wrote is the one its name says.
			entries, _ := os.ReadDir(dst)
			blobs := 0
			for _, de := range entries {
				if len(de.Name()) != 64 {
					continue
				}
				data, _ := os.ReadFile(filepath.Join(dst, de.Name()))
				if digestOf(data) != "sha256:"+de.Name() {
					t.Errorf("%s%s: blob %s has digest %s", ref, by, de.Name(), digestOf(data))
				}
				blobs++
			}
			if blobs == 0 {
				t.Errorf("%s%s: no blob copied", ref, by)
			}
		}
		// And by the digest each platform has on its own, as containerd
		// pulls a resolved platform.
		for _, c := range im.children {
			dst := filepath.Join(t.TempDir(), "img")
			run(t, "", skopeo, "copy", "--src-tls-verify=false", ref+"@"+c, "dir:"+dst)
			m, _ := os.ReadFile(filepath.Join(dst, "manifest.json"))
			if digestOf(m) != c {
				t.Errorf("%s@%s: got %s", ref, c, digestOf(m))
			}
		}
	}
	// The states pull what versions.json names: each is served, by its
	// tag and by the digest versions.json records.
	for _, v := range e.versions.Images {
		if !inISO[v.Name+":"+v.Version] {
			t.Errorf("versions.json names %s:%s, which is not on the ISO", v.Name, v.Version)
			continue
		}
		ref := "docker://" + host + "/" + e.registry + "/" + v.Name
		raw := run(t, "", skopeo, "inspect", "--raw", "--tls-verify=false", ref+"@"+v.Digest)
		if digestOf([]byte(raw)) != v.Digest {
			t.Errorf("%s@%s: the registry serves a manifest of digest %s", ref, v.Digest, digestOf([]byte(raw)))
		}
	}
	// Every image on the ISO is in versions.json, but the ones built
	// here (images/<name>/image.yaml), which no upstream names.
	listed := map[string]bool{}
	for _, v := range e.versions.Images {
		listed[v.Name+":"+v.Version] = true
	}
	for ref := range inISO {
		name, _, _ := strings.Cut(ref, ":")
		if _, err := os.Stat(filepath.Join(e.cfg.ProjectRoot, "images", name, "image.yaml")); listed[ref] || err == nil {
			continue
		}
		t.Errorf("%s is on the ISO but neither in versions.json nor built here", ref)
	}
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// nginxMaster is the pid of n's master process, from its pid file.
func nginxMaster(t *testing.T, n *testenv.Nginx) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.Prefix, "nginx.pid"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// workerUIDs are the real uids of the children of process master.
func workerUIDs(t *testing.T, master string) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var uids []string
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // exited
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ")".
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(f) < 2 || f[1] != master {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				uids = append(uids, strings.Fields(v)[0])
			}
		}
	}
	return uids
}

// mountImages returns the ISO's images/ as a node has it: the ISO mounted
// read-only (fuseiso, as no kernel mount is possible in a container),
// readable by others. Without /dev/fuse, the project's reader's extraction
// stands in.
func mountImages(t *testing.T, e *e2eISO) string {
	t.Helper()
	fuse, ferr := exec.LookPath("fuseiso")
	unmount, uerr := exec.LookPath("fusermount")
	if _, err := os.Stat("/dev/fuse"); err != nil || ferr != nil || uerr != nil {
		if testenv.Required() && ferr != nil {
			t.Fatal("fuseiso is not installed")
		}
		t.Logf("no fuseiso mount (%v %v %v): serving the extraction by the project's reader", err, ferr, uerr)
		testenv.OpenToOthers(t, e.tree)
		return filepath.Join(e.tree, "images")
	}
	dir := t.TempDir()
	testenv.OpenToOthers(t, dir)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", fuse, "-p", e.path, mnt, "-o", "allow_other")
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if exec.Command(unmount, "-u", mnt).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("fusermount -u %s failed", mnt)
	})
	return filepath.Join(mnt, "images")
}

// checkDnf installs the package set of versions.json, every package of a
// repository the ISO ships, from the ISO's repositories into an empty
// installroot, packages and repodata checked with the ISO's keys; the
// external repositories of the package list supply the rest, as they do
// for a node.
func checkDnf(t *testing.T, e *e2eISO) {
	dnf := testenv.Need(t, "dnf", "rpm")
	var conf strings.Builder
	fmt.Fprintf(&conf, "[main]\nreposdir=/nonexistent\ncachedir=%s\ninstall_weak_deps=False\n", t.TempDir())
	redhat := filepath.Join(e.tree, "packages", "redhat")
	var want []string
	shipped := map[string]bool{}
	for name, r := range e.versions.Repositories {
		shipped[name] = true
		if len(r.GPGKeys) == 0 {
			t.Errorf("versions.json: repository %s has no key", name)
		}
		var keys []string
		for _, k := range r.GPGKeys {
			keys = append(keys, "file://"+filepath.Join(redhat, k))
		}
		repoCheck := 0
		if r.Signed {
			repoCheck = 1
		}
		fmt.Fprintf(&conf, "[iso-%[1]s]\nname=%[1]s from the ISO\nbaseurl=file://%[2]s/\ngpgcheck=1\nrepo_gpgcheck=%[3]d\ngpgkey=%[4]s\n",
			name, filepath.Join(redhat, name), repoCheck, strings.Join(keys, " "))
	}
	for _, p := range e.versions.Packages {
		if !shipped[p.Repo] {
			continue
		}
		evr := p.Version + "-" + p.Release
		if p.Epoch != "" && p.Epoch != "0" {
			evr = p.Epoch + ":" + evr
		}
		want = append(want, p.Name+"-"+evr+"."+p.Arch)
	}
	sort.Strings(want)
	if len(want) == 0 {
		t.Fatal("versions.json names no package of a shipped repository")
	}
	list, err := pkglist.Load(e.cfg.PackagesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := list.ApplyMirrors(e.cfg.RepoMirrors); err != nil {
		t.Fatal(err)
	}
	external := 0
	for _, r := range list.Repos {
		if r.Kind != pkglist.External {
			continue
		}
		external++
		fmt.Fprintf(&conf, "[ext-%[1]s]\nname=%[1]s (external)\nbaseurl=%[2]s\ngpgcheck=%[3]d\ngpgkey=%[4]s\n",
			r.Name, r.BaseURL, boolInt(r.Signed()), strings.Join(r.GPGKeys, " "))
	}
	confPath := filepath.Join(t.TempDir(), "dnf.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	args := append([]string{"-y", "-c", confPath, "--setopt=reposdir=/nonexistent", "--releasever=7", "--installroot=" + root, "--nodocs", "install"}, want...)
	run(t, "", dnf[0], args...)
	q := run(t, "", dnf[1], "--root", root, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH} %{SIGPGP:pgpsig}\n")
	installed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(q), "\n") {
		nevra, sig, _ := strings.Cut(line, " ")
		installed[nevra] = sig
	}
	for _, w := range want {
		nevra := w
		if i := strings.Index(w, ":"); i >= 0 { // rpm -qa prints no epoch
			nevra = w[:strings.LastIndex(w[:i], "-")+1] + w[i+1:]
		}
		sig, ok := installed[nevra]
		if !ok {
			t.Errorf("%s is not installed:\n%s", w, q)
		} else if sig == "(none)" {
			t.Errorf("%s was installed unsigned", w)
		}
	}
	keys := 0
	for n := range installed {
		if strings.HasPrefix(n, "gpg-pubkey-") {
			keys++
		}
	}
	if keys == 0 {
		t.Errorf("dnf imported no key: gpgcheck did not run\n%s", q)
	}
	t.Logf("installed %d packages of versions.json (%d external repositories for dependencies): %s", len(want), external, strings.Join(want, " "))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkSignatures: gpg accepts the ISO's detached signature and the
// in-ISO manifest's, and sha256sum -c accepts SHA256SUM in the build root.
func checkSignatures(t *testing.T, e *e2eISO) {
	sha := testenv.Need(t, "sha256sum")[0]
	sig := e.path + ".asc"
	if out, err := rpmtest.GPGVerify(t, e.isoPubKey, sig, e.path); err != nil || !strings.Contains(string(out), "Good signature") {
		t.Errorf("gpg --verify %s: %v\n%s", sig, err, out)
	}
	m := filepath.Join(e.tree, isomanifest.Name)
	if out, err := rpmtest.GPGVerify(t, e.isoPubKey, filepath.Join(e.tree, isomanifest.SignatureName), m); err != nil || !strings.Contains(string(out), "Good signature") {
		t.Errorf("gpg --verify of the in-ISO manifest: %v\n%s", err, out)
	}
	out := run(t, e.cfg.BuildRoot, sha, "-c", "SHA256SUM")
	if !strings.Contains(out, filepath.Base(e.path)+": OK") {
		t.Errorf("sha256sum -c SHA256SUM did not check the ISO:\n%s", out)
	}
	// The in-ISO manifest is in sha256sum's format too.
	if out := run(t, e.tree, sha, "-c", "--strict", isomanifest.Name); strings.Count(out, ": OK\n") != len(e.manifest) {
		t.Errorf("sha256sum -c %s checked %d files, the manifest lists %d:\n%s", isomanifest.Name, strings.Count(out, ": OK\n"), len(e.manifest), out)
	}
}
