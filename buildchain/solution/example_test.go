package solution

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

var testEpoch = time.Unix(1700000000, 0)

// TestExample builds the example Solution as `go run mage.go solution`
// does, offline, and checks the ISO with real readers: validate, isoinfo,
// bsdtar, a second build for reproducibility, and nginx serving its
// registry template to skopeo.
func TestExample(t *testing.T) {
	testenv.Short(t, "builds the example's Go programs and images")
	tools := testenv.Need(t, "isoinfo", "bsdtar", "skopeo", "nginx")
	projectRoot, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	buildRoot := t.TempDir()
	ctx := context.Background()
	isoPath, err := BuildExample(ctx, projectRoot, buildRoot, testEpoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(buildRoot, "example-solution-1.0.0.iso"); isoPath != want {
		t.Fatalf("ISO at %s, want %s", isoPath, want)
	}
	rep := validateOrFail(t, isoPath)
	if !rep.OK() {
		t.Fatal(rep.Err())
	}
	if len(rep.Images) != 2 || rep.VolumeID != "example-solution 1.0.0" || rep.Product.BuildTimestamp != "2023-11-14T22:13:20Z" {
		t.Fatalf("report %+v", rep)
	}
	sums, _ := os.ReadFile(filepath.Join(buildRoot, "SHA256SUM"))
	sum, err := fileSHA256(isoPath)
	if err != nil || string(sums) != sum+"  example-solution-1.0.0.iso\n" {
		t.Fatalf("SHA256SUM %q, image digest %s (%v)", sums, sum, err)
	}

	// isoinfo reads product.txt by its ISO 9660 name.
	out, err := exec.Command(tools[0], "-i", isoPath, "-x", "/PRODUCT.TXT;1").Output()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProduct(out)
	if err != nil || p.ID() != "example-solution-1.0.0" || p.RequireMetalK8s != ">=2.0" || p.LayoutVersion != "1" {
		t.Fatalf("isoinfo product.txt %q: %+v %v", out, p, err)
	}

	// bsdtar extracts exactly the source files and the images.
	x := t.TempDir()
	if b, err := exec.Command(tools[1], "-xf", isoPath, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, b)
	}
	ex := exampleDir(t)
	want := map[string]string{
		"product.txt": "", RegistryConfig: "", UIDeployment: filepath.Join(ex, "ui", "deployment.yaml"),
	}
	for _, f := range []string{"operator.yaml", "role.yaml", "role_binding.yaml", "service_account.yaml", "crds/examples_crd.yaml"} {
		want[OperatorDir+"/"+f] = filepath.Join(ex, "operator", "deploy", f)
	}
	for _, im := range rep.Images {
		want[fmt.Sprintf("images/%s/%s/manifest.json", im.Name, im.Version)] = ""
		want[fmt.Sprintf("images/%s/%s/version", im.Name, im.Version)] = ""
	}
	got := map[string]bool{}
	filepath.Walk(x, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(x, p)
			got[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	for f, src := range want {
		if !got[f] {
			t.Errorf("bsdtar did not extract %s", f)
			continue
		}
		if src != "" {
			a, _ := os.ReadFile(src)
			b, _ := os.ReadFile(filepath.Join(x, f))
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs from %s", f, src)
			}
		}
	}
	var blobs int
	for f := range got {
		if _, ok := want[f]; !ok {
			if !strings.HasPrefix(f, "images/") || !oci.ValidDigest("sha256:"+filepath.Base(f)) {
				t.Errorf("unexpected file %s", f)
			}
			blobs++
		}
	}
	if blobs != 4 {
		t.Errorf("%d blobs extracted, want 4 (config and layer of 2 images)", blobs)
	}
	xrep := validateOrFail(t, x)
	if !xrep.OK() {
		t.Fatal(xrep.Err())
	}

	t.Run("reproducible", func(t *testing.T) {
		again, err := BuildExample(ctx, projectRoot, t.TempDir(), testEpoch, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum2, err := fileSHA256(again)
		if err != nil || sum2 != sum {
			t.Fatalf("second build: sha256 %s, first %s (%v)", sum2, sum, err)
		}
	})

	t.Run("nginx serves the registry template to skopeo", func(t *testing.T) {
		serveAndPull(t, tools[2], x, rep.Images)
	})
}

// serveAndPull renders registry-config.inc.j2 as MetalK8s does (repository
// <NAME>-<VERSION>, registry root the mounted images/), serves it with nginx
// beside the shared constants, and pulls every image with skopeo.
func serveAndPull(t *testing.T, skopeo, root string, images []ImageInfo) {
	tmpl, err := os.ReadFile(filepath.Join(root, RegistryConfig))
	if err != nil {
		t.Fatal(err)
	}
	const repo = "example-solution-1.0.0"
	rendered := strings.NewReplacer("{{ repository }}", repo, "{{ registry_root }}", filepath.Join(root, "images")).Replace(string(tmpl))
	constants, err := registrygen.Generate(registrygen.Config{Constants: registrygen.OnlyConstants})
	if err != nil {
		t.Fatal(err)
	}
	ng := testenv.StartNginx(t, testenv.NginxConfig{Server: string(constants) + "\n" + rendered})
	host := strings.TrimPrefix(ng.URL, "http://")
	names := make([]string, 0, len(images))
	for _, im := range images {
		names = append(names, im.Name)
		dst := t.TempDir()
		ref := fmt.Sprintf("docker://%s/%s/%s:%s", host, repo, im.Name, im.Version)
		cmd := exec.Command(skopeo, "copy", "--src-tls-verify=false", "--preserve-digests", ref, "dir:"+dst)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", ref, err, b)
		}
		m, err := os.ReadFile(filepath.Join(dst, "manifest.json"))
		if err != nil || oci.DigestOf(m) != im.Digest {
			t.Fatalf("pulled %s: manifest digest %s, want %s (%v)", ref, oci.DigestOf(m), im.Digest, err)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("no image to pull")
	}
}
