package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testenv.Need(t, "skopeo")[0]
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %q: %v\n%s", args, err, stderr.String())
	}
	return out
}

// writeLayout writes img as the only image of an OCI layout.
func writeLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

type inspected struct {
	Digest       string
	Architecture string
	Os           string
	Labels       map[string]string
	Env          []string
	Layers       []string
}

// checkWithSkopeo has skopeo read the image from an OCI layout, check what
// it reports, copy it to a dir: layout and check that nothing changed on
// the way: the manifest bytes (so the digest) and every blob.
func checkWithSkopeo(t *testing.T, img v1.Image) v1.ConfigFile {
	t.Helper()
	testenv.Need(t, "skopeo")
	want := digest(t, img)
	dir := writeLayout(t, img)

	var info inspected
	if err := json.Unmarshal(skopeo(t, "inspect", "oci:"+dir), &info); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if info.Digest != want.String() || info.Os != cf.OS || info.Architecture != cf.Architecture ||
		!reflect.DeepEqual(info.Env, cf.Config.Env) || !reflect.DeepEqual(info.Labels, cf.Config.Labels) {
		t.Errorf("skopeo inspect: %+v; want digest %s and the built config %+v", info, want, cf.Config)
	}
	layers, _ := img.Layers()
	if len(info.Layers) != len(layers) {
		t.Errorf("skopeo sees %d layers, want %d", len(info.Layers), len(layers))
	}

	var seen v1.ConfigFile
	if err := json.Unmarshal(skopeo(t, "inspect", "--config", "oci:"+dir), &seen); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "dir")
	skopeo(t, "copy", "--quiet", "oci:"+dir, "dir:"+out)
	manifest, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(manifest)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != want.String() {
		t.Errorf("skopeo copy changed the manifest: %s, want %s", got, want)
	}
	raw, _ := img.RawManifest()
	if !bytes.Equal(raw, manifest) {
		t.Errorf("dir:manifest.json differs from the built manifest")
	}
	m, _ := img.Manifest()
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		blob, err := os.ReadFile(filepath.Join(out, d.Digest.Hex))
		if err != nil {
			t.Errorf("skopeo copy did not write blob %s: %v", d.Digest, err)
			continue
		}
		if s := sha256.Sum256(blob); hex.EncodeToString(s[:]) != d.Digest.Hex || int64(len(blob)) != d.Size {
			t.Errorf("blob %s changed on the way", d.Digest)
		}
	}
	return seen
}

func TestSkopeoReadsBuiltImage(t *testing.T) {
	testenv.Need(t, "skopeo")
	root, bins := project(t)
	img := build(t, parse(t, testDef), Options{ProjectRoot: root, Epoch: testEpoch, ProductVersion: "2.4.1", Binaries: bins})
	cf := checkWithSkopeo(t, img)
	if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/usr/bin/run"}) || cf.Config.WorkingDir != "/var/empty" ||
		cf.Config.User != "1000" || cf.Config.Labels["org.opencontainers.image.version"] != "2.4.1" ||
		!reflect.DeepEqual(cf.Config.Env, []string{"PATH=/usr/local/bin:/usr/bin", "TOOLS_VERSION=2.4.1"}) ||
		!cf.Created.Equal(testEpoch) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("skopeo inspect --config: %+v", cf)
	}
}

// TestUtilsImage builds the project's metalk8s-utils image for real: the
// CLIs with gobin, then the definition; skopeo reads the result.
func TestUtilsImage(t *testing.T) {
	testenv.Short(t, "builds the project's CLIs")
	testenv.Need(t, "skopeo")
	ctx := context.Background()
	projectRoot, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(filepath.Join(projectRoot, "images", "metalk8s-utils", "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bins, err := gobin.Compile(ctx, gobin.Options{
		ProjectRoot: projectRoot, OutDir: t.TempDir(),
		GOOS: d.Platform.OS, GOARCH: d.Platform.Architecture,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bins["mkiso"]; !ok {
		t.Fatalf("gobin built %v, want at least mkiso", bins)
	}
	// One build: rebuilding to the same digest is TestBuildReproducible's
	// job, on small inputs, since gzip under -race takes seconds per MiB.
	img, err := Build(ctx, d, Options{ProjectRoot: projectRoot, Epoch: testEpoch, ProductVersion: "2.5.0-dev", Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	cf := checkWithSkopeo(t, img)
	want := map[string]string{
		"org.opencontainers.image.title":       "metalk8s-utils",
		"org.opencontainers.image.description": "Static binaries of the MetalK8s buildchain and installer CLIs",
		"org.opencontainers.image.version":     "2.5.0-dev",
		"org.opencontainers.image.source":      "https://github.com/metalk8s/buildchain",
	}
	if !reflect.DeepEqual(cf.Config.Labels, want) || cf.Config.Entrypoint != nil || cf.Config.Cmd != nil {
		t.Errorf("config %+v: want the OCI labels and no entrypoint or cmd", cf.Config)
	}

	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	found := map[string]bool{}
	for _, m := range members(t, layers[0]) {
		dir, cli := filepath.Split(m.hdr.Name)
		if dir != "usr/local/bin/" || cli == "" {
			continue
		}
		found[cli] = true
		host, err := os.ReadFile(bins[cli])
		if err != nil {
			t.Errorf("%s in the image is no CLI that was built", m.hdr.Name)
			continue
		}
		if m.hdr.Mode != 0o755 || m.body != string(host) {
			t.Errorf("%s: mode %o, %d bytes; want 0755 and the %d bytes built", m.hdr.Name, m.hdr.Mode, len(m.body), len(host))
		}
	}
	for cli := range bins {
		if !found[cli] {
			t.Errorf("CLI %s is missing from the image", cli)
		}
	}
}

// TestBaseFromRegistry builds on a multi-platform base served by a real
// Distribution registry, fetched by digest the way the caller's pipeline
// does, then pushes the result and has skopeo read it back.
func TestBaseFromRegistry(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ctx := context.Background()
	amd, arm := testBase(t, "linux/amd64"), testBase(t, "linux/arm64")
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	baseRef, err := name.ParseReference(reg.Host + "/base/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(baseRef, idx, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()

	fetch := func(ctx context.Context, source string, d v1.Hash, p v1.Platform) (v1.Image, error) {
		ref, err := name.NewDigest(source + "@" + d.String())
		if err != nil {
			return nil, err
		}
		return remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(p))
	}
	root, _ := project(t)
	def := bytes.Replace([]byte(onBase), []byte("registry.example.com/base, digest: sha256:0000000000000000000000000000000000000000000000000000000000000000"),
		[]byte(reg.Host+"/base/multi, digest: "+idxDigest.String()), 1)
	d := parse(t, string(def))
	img := build(t, d, Options{ProjectRoot: root, Epoch: testEpoch, BaseFetcher: fetch})
	checkDerived(t, amd, img)
	if again := build(t, d, Options{ProjectRoot: root, Epoch: testEpoch, BaseFetcher: fetch}); digest(t, again) != digest(t, img) {
		t.Error("two builds over a fetched base differ")
	}

	out, err := name.ParseReference(reg.Host + "/derived:3")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(out, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	var info inspected
	if err := json.Unmarshal(skopeo(t, "inspect", "--tls-verify=false", "docker://"+out.String()), &info); err != nil {
		t.Fatal(err)
	}
	if info.Digest != digest(t, img).String() || len(info.Layers) != 2 {
		t.Errorf("skopeo inspect of the pushed image: %+v; want digest %s and 2 layers", info, digest(t, img))
	}
	checkWithSkopeo(t, img)
}
