package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

// fixtureImage is one image of a fixture archive.
type fixtureImage struct {
	name, tag, digest string
	source            string // upstream registry/path ("" for a Solution's)
}

// fixtureArchive is a mounted archive tree and what it must serve.
type fixtureArchive struct {
	Archive
	dir     string // the tree (its MountPath is under the test's root)
	images  []fixtureImage
	repo    string // its yum repository, "" if none
	keyPath string // the public key signing its RPMs
}

// buildArchive lays out an archive under root at /srv/scality/<name>-<version>:
// images/ in the skopeo dir: layout (random images stored through the
// buildchain's own writer), the registry template registrygen generates,
// and for MetalK8s a yum repository of signed RPMs (rpmbuild, rpmsign,
// repogen) with its key and salt/metalk8s/versions.json.
func buildArchive(t *testing.T, root, name, version string, kind Kind, images []fixtureImage, layerSize int64) *fixtureArchive {
	t.Helper()
	a := &fixtureArchive{Archive: Archive{Name: name, Version: version, Kind: kind, MountPath: "/srv/scality/" + name + "-" + version}}
	a.dir = filepath.Join(root, a.MountPath)
	cache := oci.Cache{Dir: filepath.Join(root, "cache-"+name)}
	vers := salttree.Versions{Packages: map[string]salttree.Package{}, Images: map[string]salttree.Image{}, Repositories: map[string]salttree.Repository{}, Registries: []string{}}
	vers.MetalK8s.Version = version
	for _, im := range images {
		img, err := random.Image(layerSize, 1)
		if err != nil {
			t.Fatal(err)
		}
		res, err := oci.StoreImage(oci.Image{Name: im.name, Version: im.tag, Source: im.source}, img, cache)
		if err != nil {
			t.Fatal(err)
		}
		if err := oci.WriteDir(filepath.Join(a.dir, "images", im.name, im.tag), res, cache); err != nil {
			t.Fatal(err)
		}
		im.digest = res.Image.Digest
		a.images = append(a.images, im)
		if im.source != "" {
			vers.Images[im.name] = salttree.Image{Name: im.name, Version: im.tag, Digest: im.digest, Source: im.source}
		}
	}
	mode := registrygen.OmitConstants
	if kind == KindMetalK8s {
		mode = registrygen.WithConstants
		a.repo = "metalk8s-epel"
		key := rpmtest.GPGKey(t, "serve-repo", "rsa2048")
		a.keyPath = key.PublicPath
		signed := rpmtest.Sign(t, key, rpmtest.BuildRPMs(t, rpmtest.Standard()...), false)
		repoDir := filepath.Join(a.dir, "packages/redhat", a.repo)
		rpmtest.Copy(t, signed, repoDir)
		epoch := time.Unix(rpmtest.Epoch, 0)
		if _, err := repogen.Generate(context.Background(), repoDir, repogen.Options{Epoch: &epoch}); err != nil {
			t.Fatal(err)
		}
		keyName := "RPM-GPG-KEY-metalk8s-" + a.repo + "_1"
		if err := os.WriteFile(filepath.Join(a.dir, "packages/redhat", keyName), key.Public, 0o644); err != nil {
			t.Fatal(err)
		}
		vers.Repositories[a.repo] = salttree.Repository{GPGKeys: []string{keyName}}
		data, err := json.MarshalIndent(vers, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(a.dir, "salt/metalk8s"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.dir, VersionsFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := solution.WriteRegistryConfig(a.dir, mode); err != nil {
		t.Fatal(err)
	}
	a.FS = os.DirFS(a.dir)
	return a
}

// testRoot is a --root whose trees nginx's unprivileged workers can read.
func testRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	return root
}

// openTree makes every directory of a tree readable by others (the
// fixtures are made with the test's umask; nginx's workers are nobody).
func openTree(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.Chmod(p, fi.Mode().Perm()|0o755)
		}
		return os.Chmod(p, fi.Mode().Perm()|0o444)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// twoArchives builds the MetalK8s-like and the Solution-like archive.
func twoArchives(t *testing.T, root string) (mk, sol *fixtureArchive) {
	t.Helper()
	mk = buildArchive(t, root, "metalk8s", "2.0.0", KindMetalK8s, []fixtureImage{
		{name: "calico-node", tag: "v3.8.2", source: "quay.mirror.invalid/calico/node"},
		{name: "coredns", tag: "1.3.1", source: "k8s.mirror.invalid/coredns"},
	}, 2048)
	sol = buildArchive(t, root, "example-solution", "1.0.0", KindSolution, []fixtureImage{
		{name: "example-solution-operator", tag: "1.0.0"},
		{name: "library/ui", tag: "1.0.0"},
	}, 2048)
	openTree(t, filepath.Join(root, "srv"))
	return mk, sol
}

func archivesOf(fs ...*fixtureArchive) []Archive {
	var out []Archive
	for _, f := range fs {
		out = append(out, f.Archive)
	}
	return out
}

func testOptions(t *testing.T) Options {
	t.Helper()
	port := testenv.FreePort(t)
	return Options{
		Listen: fmt.Sprintf("127.0.0.1:%d", port),
		User:   testenv.UnprivilegedUser(t),
		Nginx:  testenv.Need(t, "nginx")[0],
	}
}
