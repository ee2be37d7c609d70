package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// upstream is a docker-registry behind a proxy that counts the bytes it
// serves and can corrupt blobs, so tests see what crosses the wire.
type upstream struct {
	host    string // the proxy's host:port, used as the mirror
	bytes   atomic.Int64
	tamper  atomic.Bool
	digests map[string]string // fixture name → pinned digest
	raw     map[string][]byte // fixture name → raw top manifest
	amd64   string            // digest of the amd64 child of the index
}

func startUpstream(t *testing.T) *upstream {
	reg := testenv.StartRegistry(t)
	u := &upstream{digests: map[string]string{}, raw: map[string][]byte{}}
	target, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		isBlob := strings.Contains(resp.Request.URL.Path, "/blobs/")
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if isBlob && u.tamper.Load() && len(body) > 0 && resp.Request.Method == http.MethodGet {
			body[len(body)/2] ^= 0xff
		}
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Path != "/v2/" {
			u.bytes.Add(int64(len(body)))
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	u.host = strings.TrimPrefix(srv.URL, "http://")

	push := func(repo string, img v1.Image) {
		ref, err := name.ParseReference(reg.Host+"/"+repo+":latest", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		u.digests[repo] = d.String()
		u.raw[repo], _ = img.RawManifest()
	}
	alpha, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := alpha.ConfigFile()
	cf.OS, cf.Architecture = "linux", "amd64"
	if alpha, err = mutate.ConfigFile(alpha, cf); err != nil {
		t.Fatal(err)
	}
	push("library/alpha", alpha)
	extra, _ := random.Layer(32<<10, types.DockerLayer)
	beta, _ := mutate.AppendLayers(alpha, extra) // shares alpha's layers
	push("library/beta", beta)

	ociLayer, _ := random.Layer(16<<10, types.OCILayer)
	gamma, _ := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), ociLayer)
	push("team/tools/gamma", gamma)

	amd, _ := random.Image(8<<10, 1)
	arm, _ := random.Image(8<<10, 1)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref, _ := name.ParseReference(reg.Host+"/library/delta:latest", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	u.digests["library/delta"] = d.String()
	u.raw["library/delta"], _ = idx.RawManifest()
	ad, _ := amd.Digest()
	u.amd64 = ad.String()
	return u
}

// list writes an images.yaml naming the fixtures under upstream names.
func (u *upstream) list(t *testing.T, dir string, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		short := n[strings.LastIndex(n, "/")+1:]
		registry := "docker.io"
		if strings.HasPrefix(n, "team/") {
			registry = "quay.io"
		}
		b.WriteString("- name: " + short + "\n  version: \"1.0\"\n  source: " + registry + "/" + n + "\n  digest: " + u.digests[n] + "\n")
	}
	p := filepath.Join(dir, "images.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (u *upstream) openBuild(t *testing.T, root string, env map[string]string) (*build.Session, *bytes.Buffer) {
	t.Helper()
	t.Setenv("BUILD_ROOT", filepath.Join(root, "dist"))
	t.Setenv("IMAGE_MIRRORS", "docker.io="+u.host+",quay.io="+u.host)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	t.Setenv("PLATFORMS", "linux/amd64")
	t.Setenv("JOBS", "4")
	for k, v := range env {
		t.Setenv(k, v)
	}
	b, log := openSession(t, root)
	t.Cleanup(func() { b.Close() })
	return b, log
}

// openSession opens a run of the project at root, configured from the
// environment, logging to the buffer it returns. The caller closes it.
func openSession(t *testing.T, root string) (*build.Session, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	b, err := build.OpenConfig(cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	return b, &log
}

func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(testenv.Need(t, "skopeo")[0], args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("skopeo %v: %v\n%s", args, err, stderr)
	}
	return out
}

func statuses(b *build.Session) map[step.Status]int {
	m := map[step.Status]int{}
	for _, r := range b.Engine.Results() {
		m[r.Status]++
	}
	return m
}

func TestImagesFetchVerifyLayoutDedup(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	all := []string{"library/alpha", "library/beta", "team/tools/gamma", "library/delta"}
	list := u.list(t, root, all...)
	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	if err := Images(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b.Close()

	for _, n := range all {
		dir := filepath.Join(b.ImagesDir(), n[strings.LastIndex(n, "/")+1:], "1.0")
		want := u.digests[n]
		if n == "library/delta" {
			want = u.amd64 // resolved to the one platform asked for
		}
		raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if oci.DigestOf(raw) != want {
			t.Errorf("%s: manifest.json digest %s, want %s", n, oci.DigestOf(raw), want)
		}
		var info struct{ Digest string }
		if err := json.Unmarshal(skopeo(t, "inspect", "dir:"+dir), &info); err != nil {
			t.Fatal(err)
		}
		if info.Digest != want {
			t.Errorf("skopeo inspect %s: digest %s, want %s", n, info.Digest, want)
		}
		skopeo(t, "copy", "--quiet", "dir:"+dir, "oci:"+filepath.Join(t.TempDir(), "oci")+":x")
		if v, _ := os.ReadFile(filepath.Join(dir, "version")); string(v) != dirlayout.Version {
			t.Errorf("%s: version file %q", n, v)
		}
	}

	// alpha's layers are beta's: one inode.
	var alpha v1.Manifest
	raw, _ := os.ReadFile(filepath.Join(b.ImagesDir(), "alpha", "1.0", "manifest.json"))
	json.Unmarshal(raw, &alpha)
	for _, l := range alpha.Layers {
		a, _ := os.Stat(filepath.Join(b.ImagesDir(), "alpha", "1.0", l.Digest.Hex))
		bb, err := os.Stat(filepath.Join(b.ImagesDir(), "beta", "1.0", l.Digest.Hex))
		if err != nil || !os.SameFile(a, bb) {
			t.Errorf("layer %s is not shared between alpha and beta: %v", l.Digest, err)
		}
	}
	st, err := oci.Dedup(b.ImagesDir())
	if err != nil || st.Linked != 0 || st.Saved() <= 0 {
		t.Errorf("dedup after build: %+v %v", st, err)
	}

	// A warm run transfers nothing and runs nothing.
	before := u.bytes.Load()
	b2, log2 := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	if err := Images(context.Background(), b2); err != nil {
		t.Fatal(err)
	}
	if n := u.bytes.Load() - before; n != 0 {
		t.Errorf("warm run transferred %d bytes", n)
	}
	if s := statuses(b2); s[step.Ran] != 0 || s[step.UpToDate] != len(all)+1 {
		t.Errorf("warm run statuses %v\n%s", s, log2)
	}
	b2.Close()

	// Without stamps everything re-runs, from the cache alone.
	os.RemoveAll(filepath.Join(root, "dist", ".stamps"))
	b3, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	if err := Images(context.Background(), b3); err != nil {
		t.Fatal(err)
	}
	if n := u.bytes.Load() - before; n != 0 {
		t.Errorf("cold-stamp run transferred %d bytes", n)
	}
	b3.Close()

	// Dropping an image from the list removes it from the ISO root.
	u.list(t, root, "library/alpha")
	b4, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	if err := Images(context.Background(), b4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.ImagesDir(), "beta")); err == nil {
		if _, err := os.Stat(filepath.Join(b.ImagesDir(), "beta", "1.0")); err == nil {
			t.Error("beta is still in the ISO root after leaving the list")
		}
	}
}

func TestImagesTransferOnlyUniqueBytes(t *testing.T) {
	u := startUpstream(t)
	root := t.TempDir()
	list := u.list(t, root, "library/alpha", "library/beta", "team/tools/gamma")
	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	u.bytes.Store(0)
	if err := Images(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	// The unique bytes are the distinct files of the three image dirs.
	want := int64(0)
	seen := map[string]bool{}
	for _, n := range []string{"library/alpha", "library/beta", "team/tools/gamma"} {
		dir := filepath.Join(b.ImagesDir(), n[strings.LastIndex(n, "/")+1:], "1.0")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() == "version" {
				continue
			}
			info, _ := e.Info()
			key := e.Name()
			if e.Name() == "manifest.json" {
				key = n
			}
			if !seen[key] {
				seen[key] = true
				want += info.Size()
			}
		}
	}
	if got := u.bytes.Load(); got != want {
		t.Errorf("transferred %d bytes, want the %d unique bytes", got, want)
	}
}

func TestImagesKeepIndexWithSeveralPlatforms(t *testing.T) {
	u := startUpstream(t)
	root := t.TempDir()
	list := u.list(t, root, "library/delta")
	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "PLATFORMS": "linux/amd64,linux/arm64/v8"})
	if err := Images(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	dir := filepath.Join(b.ImagesDir(), "delta", "1.0")
	raw, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if !bytes.Equal(raw, u.raw["library/delta"]) {
		t.Fatal("manifest.json is not the pinned index")
	}
	if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(u.amd64, "sha256:")+".manifest.json")); err != nil {
		t.Fatal(err)
	}
	out := skopeo(t, "inspect", "--raw", "dir:"+dir)
	if oci.DigestOf(out) != u.digests["library/delta"] {
		t.Fatal("skopeo does not read the index back")
	}
	skopeo(t, "copy", "--quiet", "--all", "dir:"+dir, "oci:"+filepath.Join(t.TempDir(), "oci")+":x")
}

func TestImagesErrors(t *testing.T) {
	u := startUpstream(t)

	t.Run("missing platform", func(t *testing.T) {
		root := t.TempDir()
		list := u.list(t, root, "library/delta")
		b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "PLATFORMS": "linux/s390x"})
		err := Images(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/amd64") || !strings.Contains(err.Error(), "delta:1.0") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("unreachable registry", func(t *testing.T) {
		root := t.TempDir()
		list := u.list(t, root, "library/delta", "team/tools/gamma")
		closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there
		b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "IMAGE_MIRRORS": "docker.io=" + closed + ",quay.io=" + closed})
		err := Images(context.Background(), b)
		if err == nil {
			t.Fatal("images fetched from a closed port")
		}
		first, _, _ := strings.Cut(err.Error(), "\n")
		if !strings.Contains(first, "cannot reach "+closed) || !strings.Contains(first, "IMAGE_MIRRORS") {
			t.Fatalf("first line does not name the host and the key: %q", first)
		}
		if !strings.Contains(err.Error(), "delta:1.0") || !strings.Contains(err.Error(), "gamma:1.0") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("tampered blob", func(t *testing.T) {
		root := t.TempDir()
		list := u.list(t, root, "team/tools/gamma")
		b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		u.tamper.Store(true)
		defer u.tamper.Store(false)
		err := Images(context.Background(), b)
		var man v1.Manifest
		json.Unmarshal(u.raw["team/tools/gamma"], &man)
		layer := man.Layers[0].Digest.String()
		if err == nil || !strings.Contains(err.Error(), "gamma:1.0") || !strings.Contains(err.Error(), "digest mismatch") || strings.Contains(err.Error(), "attempts") {
			t.Fatalf("got %v", err)
		}
		if !strings.Contains(err.Error(), layer) && !strings.Contains(err.Error(), man.Config.Digest.String()) {
			t.Fatalf("error does not name the blob: %v", err)
		}
		if b.BlobCache().Has(layer, -1) {
			t.Fatal("tampered blob kept in the cache")
		}
		if _, err := os.Stat(filepath.Join(b.ImagesDir(), "gamma", "1.0")); err == nil {
			t.Fatal("output written for a tampered image")
		}
		entries, _ := os.ReadDir(filepath.Join(b.BlobCache().Dir, "sha256"))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				t.Fatalf("temp litter in the cache: %s", e.Name())
			}
		}
	})

	t.Run("unknown digest", func(t *testing.T) {
		root := t.TempDir()
		list := filepath.Join(root, "images.yaml")
		os.WriteFile(list, []byte("- name: ghost\n  version: v1\n  source: docker.io/library/alpha\n  digest: sha256:"+strings.Repeat("0", 64)+"\n"), 0o644)
		b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		err := Images(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), "ghost:v1") || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("registry down", func(t *testing.T) {
		root := t.TempDir()
		list := u.list(t, root, "library/alpha")
		b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list,
			"IMAGE_MIRRORS": "docker.io=127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))})
		err := Images(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), "alpha:1.0") || !strings.Contains(err.Error(), "giving up after 4 attempts") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("malformed list", func(t *testing.T) {
		root := t.TempDir()
		list := filepath.Join(root, "images.yaml")
		os.WriteFile(list, []byte("- name: a\n  version: v1\n  sauce: x\n"), 0o644)
		b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		err := Images(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), list+":3: unknown field \"sauce\"") {
			t.Fatalf("got %v", err)
		}
	})
}

// A local image on a pinned upstream base: the base comes through the
// verifying fetcher (and its cache), the result is reproducible, and skopeo
// reads it back with the base's layers under ours.
func TestLocalImageOnPinnedBase(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	var digests []string
	for i := 0; i < 2; i++ {
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=\n"), 0o644)
		os.MkdirAll(filepath.Join(root, "images", "tool"), 0o755)
		os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello\n"), 0o644)
		def := "name: tool\nversion: product\nbase:\n  source: docker.io/library/alpha\n  digest: " + u.digests["library/alpha"] +
			"\nlayers:\n  - files:\n      - {src: hello.txt, dst: /etc/hello.txt, mode: 0644}\nconfig:\n  entrypoint: [/bin/true]\n"
		os.WriteFile(filepath.Join(root, "images", "tool", "image.yaml"), []byte(def), 0o644)
		list := filepath.Join(root, "images", "images.yaml")
		os.WriteFile(list, nil, 0o644)
		b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		if err := Images(context.Background(), b); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		dir := filepath.Join(b.ImagesDir(), "tool", "2.0.0")
		var info struct {
			Digest string
			Layers []string
		}
		if err := json.Unmarshal(skopeo(t, "inspect", "dir:"+dir), &info); err != nil {
			t.Fatal(err)
		}
		var base v1.Manifest
		json.Unmarshal(u.raw["library/alpha"], &base)
		if len(info.Layers) != len(base.Layers)+1 || info.Layers[0] != base.Layers[0].Digest.String() {
			t.Fatalf("layers %v do not start with the base's %v", info.Layers, base.Layers)
		}
		digests = append(digests, info.Digest)
	}
	if digests[0] != digests[1] {
		t.Fatalf("rebuild gave %s then %s", digests[0], digests[1])
	}
}

// The project's own metalk8s-utils image, from the real CLIs of ./cmd.
func TestMetalK8sUtilsImage(t *testing.T) {
	testenv.Short(t, "builds every CLI")
	testenv.Need(t, "skopeo")
	root, _ := filepath.Abs("../..")
	tmp := t.TempDir()
	list := filepath.Join(tmp, "images.yaml")
	os.WriteFile(list, nil, 0o644)
	t.Setenv("BUILD_ROOT", filepath.Join(tmp, "dist"))
	t.Setenv("IMAGES_FILE", list)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	b, log := openSession(t, root)
	defer b.Close()
	if err := Images(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	info, _ := b.Info()
	dir := filepath.Join(b.ImagesDir(), "metalk8s-utils", info.Version.String())
	var cfgOut struct {
		Config struct{ Env []string }
	}
	if err := json.Unmarshal(skopeo(t, "inspect", "--config", "dir:"+dir), &cfgOut); err != nil {
		t.Fatal(err)
	}
	if len(cfgOut.Config.Env) == 0 || cfgOut.Config.Env[0] != "PATH=/usr/local/bin" {
		t.Fatalf("config env %v", cfgOut.Config.Env)
	}
	if _, err := os.Stat(filepath.Join(tmp, "dist", "bin", "linux_amd64", "mkiso")); err != nil {
		t.Fatal(err)
	}
}
