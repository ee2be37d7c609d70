package registrygen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// fixtureImage is one tag of the test tree and what clients must get.
type fixtureImage struct {
	name, tag string
	digest    string // of the manifest or index
	mediaType string
	children  []string // an index's child manifest digests
	blobs     []string // config and layer digests of the image or of all children
}

func (f fixtureImage) ref() string { return f.name + ":" + f.tag }

type fixtureTree struct {
	root   string
	images []fixtureImage
}

var (
	fixtureOnce sync.Once
	fixture     *fixtureTree
	fixtureErr  error
	fixtureSkip string
	fixtureBase string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureBase != "" && os.Getenv("REGISTRYGEN_KEEP_FIXTURE") == "" {
		os.RemoveAll(fixtureBase)
	}
	os.Exit(code)
}

// testTree returns the shared image tree, built once per test binary with
// go-containerregistry, pushed to a Distribution registry (Debian's
// docker-registry) and written in the dir: layout by the real skopeo, the
// reference writer of that layout, as docs 12.2.4 does it:
//
//	v2s2/app:1.0, v2s2/app:latest  Docker v2s2 (the same image twice)
//	oci/app:2.0                     OCI manifest with OCI layers
//	multi/app:3.0                   OCI index, linux/amd64 + linux/arm64
//	multi/docker:3.1                Docker manifest list, same platforms
//	library/busybox:1.36            nested name, Docker v2s2
func testTree(t testing.TB) *fixtureTree {
	t.Helper()
	fixtureOnce.Do(func() {
		for _, p := range []string{"skopeo", "docker-registry"} {
			if _, err := exec.LookPath(p); err != nil {
				fixtureSkip = p
				return
			}
		}
		// Set first: a t.Fatal inside StartRegistry ends Do early.
		fixtureErr = errors.New("the registry for the fixtures did not start (see the first test's log)")
		fixture, fixtureErr = buildFixture(testenv.StartRegistry(t).Host)
	})
	if fixtureSkip != "" {
		testenv.Need(t, fixtureSkip)
	}
	if fixtureErr != nil {
		t.Fatalf("building the test tree: %v", fixtureErr)
	}
	return fixture
}

func platformImage(mt, layerMT, configMT types.MediaType, arch string, layers int, size int64) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt), configMT)
	for range layers {
		l, err := random.Layer(size, layerMT)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = []string{"/bin/true"}
	return mutate.ConfigFile(img, cf)
}

func dockerImage(arch string, layers int, size int64) (v1.Image, error) {
	return platformImage(types.DockerManifestSchema2, types.DockerLayer, types.DockerConfigJSON, arch, layers, size)
}

func ociImage(arch string, layers int, size int64) (v1.Image, error) {
	return platformImage(types.OCIManifestSchema1, types.OCILayer, types.OCIConfigJSON, arch, layers, size)
}

func imageBlobs(img v1.Image) ([]string, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out, nil
}

func buildFixture(registry string) (*fixtureTree, error) {
	base, err := os.MkdirTemp("", "registrygen-fixture-")
	if err != nil {
		return nil, err
	}
	fixtureBase = base
	tree := &fixtureTree{root: filepath.Join(base, "root")}
	refOf := func(repo, tag string) (name.Reference, error) {
		return name.ParseReference(registry + "/" + repo + ":" + tag)
	}
	addImage := func(name, tag string, img v1.Image) error {
		d, err := img.Digest()
		if err != nil {
			return err
		}
		mt, err := img.MediaType()
		if err != nil {
			return err
		}
		blobs, err := imageBlobs(img)
		if err != nil {
			return err
		}
		tree.images = append(tree.images, fixtureImage{name: name, tag: tag, digest: d.String(), mediaType: string(mt), blobs: blobs})
		ref, err := refOf(name, tag)
		if err != nil {
			return err
		}
		return remote.Write(ref, img)
	}
	// Indexes are written by hand: go-containerregistry adds artifactType
	// to descriptors, which skopeo 1.9 drops by re-serialising the index
	// (so changing its digest) instead of copying it verbatim.
	addIndex := func(repo, tag string, mt types.MediaType, mk func(arch string) (v1.Image, error)) error {
		fi := fixtureImage{name: repo, tag: tag, mediaType: string(mt)}
		doc := map[string]any{"schemaVersion": 2, "mediaType": mt}
		var descs []map[string]any
		for _, arch := range []string{"amd64", "arm64"} {
			img, err := mk(arch)
			if err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			cmt, err := img.MediaType()
			if err != nil {
				return err
			}
			size, err := img.Size()
			if err != nil {
				return err
			}
			blobs, err := imageBlobs(img)
			if err != nil {
				return err
			}
			ref, err := name.ParseReference(registry + "/" + repo + "@" + d.String())
			if err != nil {
				return err
			}
			if err := remote.Write(ref, img); err != nil {
				return err
			}
			fi.children = append(fi.children, d.String())
			fi.blobs = append(fi.blobs, blobs...)
			descs = append(descs, map[string]any{"mediaType": cmt, "digest": d, "size": size,
				"platform": map[string]string{"os": "linux", "architecture": arch}})
		}
		doc["manifests"] = descs
		raw, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		fi.digest = "sha256:" + hex.EncodeToString(sum[:])
		tree.images = append(tree.images, fi)
		ref, err := refOf(repo, tag)
		if err != nil {
			return err
		}
		return remote.Put(ref, rawManifest{raw, mt})
	}
	v2, err := dockerImage("amd64", 2, 4096)
	if err != nil {
		return nil, err
	}
	if err := addImage("v2s2/app", "1.0", v2); err != nil {
		return nil, err
	}
	if err := addImage("v2s2/app", "latest", v2); err != nil {
		return nil, err
	}
	// One layer of 1 MiB, for Range requests and the benchmark.
	oci, err := ociImage("amd64", 1, 1<<20)
	if err != nil {
		return nil, err
	}
	if err := addImage("oci/app", "2.0", oci); err != nil {
		return nil, err
	}
	if err := addIndex("multi/app", "3.0", types.OCIImageIndex, func(a string) (v1.Image, error) { return ociImage(a, 2, 2048) }); err != nil {
		return nil, err
	}
	if err := addIndex("multi/docker", "3.1", types.DockerManifestList, func(a string) (v1.Image, error) { return dockerImage(a, 1, 2048) }); err != nil {
		return nil, err
	}
	bb, err := dockerImage("amd64", 1, 3000)
	if err != nil {
		return nil, err
	}
	if err := addImage("library/busybox", "1.36", bb); err != nil {
		return nil, err
	}

	for _, im := range tree.images {
		dst := filepath.Join(tree.root, filepath.FromSlash(im.name), im.tag)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		out, err := exec.Command("skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
			"docker://"+registry+"/"+im.ref(), "dir:"+dst).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("skopeo copy %s: %v\n%s", im.ref(), err, out)
		}
	}
	return tree, nil
}

// rawManifest is a manifest pushed as exactly these bytes.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// byRef finds a fixture image.
func (f *fixtureTree) byRef(t testing.TB, name, tag string) fixtureImage {
	t.Helper()
	for _, im := range f.images {
		if im.name == name && im.tag == tag {
			return im
		}
	}
	t.Fatalf("no fixture image %s:%s", name, tag)
	return fixtureImage{}
}

// copyTree copies the shared tree to a test's own directory, for tests
// that damage or extend it.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
	return dst
}

func hexOf(d string) string { return strings.TrimPrefix(d, "sha256:") }
