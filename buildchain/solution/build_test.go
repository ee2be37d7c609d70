package solution

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func randomImage(t *testing.T, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(4<<10, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// sourceDir writes a solution source using the example's Operator and UI
// manifests, with the given images section.
func sourceDir(t *testing.T, images string) string {
	t.Helper()
	dir := t.TempDir()
	if err := copyTree(filepath.Join(exampleDir(t), "operator", "deploy"), filepath.Join(dir, "operator", "deploy"), false); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(exampleDir(t), "ui", "deployment.yaml"), filepath.Join(dir, "ui", "deployment.yaml")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, SourceFile), []byte("name: example-solution\nversion: 1.0.0\nrequire_metalk8s: \">=2.0\"\nimages:\n"+images))
	return dir
}

// TestBuildSources builds from every kind of image source: a registry, an
// OCI layout, a docker save tarball and a skopeo dir:.
func TestBuildSources(t *testing.T) {
	reg := testenv.StartRegistry(t)
	op := randomImage(t, 2)
	ui, err := mutate.AppendLayers(op, mustLayer(t)) // shares op's layers
	if err != nil {
		t.Fatal(err)
	}
	alpha := randomImage(t, 1)
	ref, _ := name.ParseReference(reg.Host+"/library/alpha:2.0.0", name.Insecure)
	if err := remote.Write(ref, alpha); err != nil {
		t.Fatal(err)
	}

	src := sourceDir(t, `  - {name: example-solution-operator, version: 1.0.0, oci: layout, ref: "1.0.0"}
  - {name: example-solution-ui, version: 1.0.0, docker-archive: ui.tar, ref: "example/ui:1.0.0"}
  - {name: tools/db, version: 3.0.0, dir: db}
  - {name: alpha, version: 2.0.0, source: `+reg.Host+`/library/alpha, digest: "`+digestOf(t, alpha)+`"}
`)
	lp, err := layout.Write(filepath.Join(src, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(randomImage(t, 1), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "0.9.0"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(op, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0.0"})); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example/ui:1.0.0")
	if err := tarball.WriteToFile(filepath.Join(src, "ui.tar"), tag, ui); err != nil {
		t.Fatal(err)
	}
	writeTestImage(t, filepath.Join(src, "db"), "db")
	dbManifest, _ := os.ReadFile(filepath.Join(src, "db", "manifest.json"))

	out := filepath.Join(t.TempDir(), "out", "s.iso")
	res, err := BuildArchive(context.Background(), src, BuildOptions{
		Output: out, CacheDir: filepath.Join(t.TempDir(), "cache"), Epoch: testEpoch, Git: "test",
		Insecure: []string{reg.Host},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := validateOrFail(t, out)
	if !rep.OK() {
		t.Fatal(rep.Err())
	}
	want := map[string]string{
		"example-solution-operator:1.0.0": digestOf(t, op),
		"tools/db:3.0.0":                  oci.DigestOf(dbManifest),
		"alpha:2.0.0":                     digestOf(t, alpha),
		"example-solution-ui:1.0.0":       "", // re-compressed by the tarball reader
	}
	if len(rep.Images) != len(want) || len(res.Images) != len(want) {
		t.Fatalf("images %+v", rep.Images)
	}
	for _, im := range rep.Images {
		d, ok := want[im.Name+":"+im.Version]
		if !ok || (d != "" && d != im.Digest) {
			t.Errorf("image %s:%s digest %s, want %s", im.Name, im.Version, im.Digest, d)
		}
	}
	if res.Product.Git != "test" || res.Product.BuildTimestamp != "2023-11-14T22:13:20Z" {
		t.Errorf("product %+v", res.Product)
	}
}

func mustLayer(t *testing.T) v1.Layer {
	l, err := random.Layer(2<<10, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBuildFromTree: an archive tree is staged, its registry template
// regenerated without touching the author's copy.
func TestBuildFromTree(t *testing.T) {
	root := validTree(t)
	stale := []byte("# stale\n")
	mustWrite(t, filepath.Join(root, RegistryConfig), stale)
	out := filepath.Join(t.TempDir(), "tree.iso")
	if _, err := BuildArchive(context.Background(), root, BuildOptions{Output: out, CacheDir: t.TempDir(), Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	if rep := validateOrFail(t, out); !rep.OK() {
		t.Fatal(rep.Err())
	}
	if got, _ := os.ReadFile(filepath.Join(root, RegistryConfig)); string(got) != string(stale) {
		t.Fatalf("the source tree's %s was modified", RegistryConfig)
	}
}

// TestBuildBadInput: each failure names its cause and leaves no ISO and no
// temporary file behind.
func TestBuildBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T) string
		errHas string
	}{
		{"image referenced but not listed", func(t *testing.T) string {
			src := sourceDir(t, "  - {name: example-solution-operator, version: 1.0.0, dir: op}\n")
			writeTestImage(t, filepath.Join(src, "op"), "op")
			return src
		}, `ui/deployment.yaml: line 21: image "metalk8s-registry-from-config.invalid/example-solution-1.0.0/example-solution-ui:1.0.0" is not in the archive`},
		{"corrupt dir: blob", func(t *testing.T) string {
			src := sourceDir(t, "  - {name: example-solution-operator, version: 1.0.0, dir: op}\n")
			writeTestImage(t, filepath.Join(src, "op"), "op")
			entries, _ := os.ReadDir(filepath.Join(src, "op"))
			for _, e := range entries {
				if len(e.Name()) == 64 {
					p := filepath.Join(src, "op", e.Name())
					data, _ := os.ReadFile(p)
					data[0] ^= 1
					mustWrite(t, p, data)
				}
			}
			return src
		}, "solution.yaml:5: image example-solution-operator:1.0.0 (dir)"},
		{"missing operator", func(t *testing.T) string {
			src := sourceDir(t, "  []\n")
			os.RemoveAll(filepath.Join(src, "operator"))
			return src
		}, "operator files:"},
		{"symlink in the operator files", func(t *testing.T) string {
			src := sourceDir(t, "  []\n")
			os.Symlink("/etc/passwd", filepath.Join(src, "operator", "deploy", "passwd.yaml"))
			return src
		}, "is a symbolic link"},
		{"OCI layout without the ref", func(t *testing.T) string {
			src := sourceDir(t, "  - {name: example-solution-operator, version: 1.0.0, oci: layout, ref: \"2.0\"}\n")
			lp, _ := layout.Write(filepath.Join(src, "layout"), empty.Index)
			lp.AppendImage(randomImage(t, 1), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"}))
			return src
		}, `no image with ref "2.0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.setup(t)
			outDir := t.TempDir()
			_, err := BuildArchive(context.Background(), src, BuildOptions{Output: filepath.Join(outDir, "s.iso"), CacheDir: t.TempDir(), Epoch: testEpoch})
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %v, want one containing %q", err, tc.errHas)
			}
			left, _ := os.ReadDir(outDir)
			if len(left) != 0 {
				t.Fatalf("left behind in the output directory: %v", left)
			}
		})
	}
}

// fileSHA256 digests a file by reading it, apart from the digest the ISO
// writer computes.
func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
