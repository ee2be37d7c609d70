package isosbom

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/metalk8s/buildchain/internal/testenv"
)

func TestUUIDv5(t *testing.T) {
	// RFC 9562 appendix A.4: www.example.com in the DNS namespace.
	if got := uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", []byte("www.example.com")); got != "2ed6657d-e927-568b-95e1-2665a8aea6a2" {
		t.Fatalf("uuidV5 = %s", got)
	}
}

func decode(t *testing.T, data []byte) *cdx.BOM {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("the library's decoder rejects the SBOM: %v", err)
	}
	return &bom
}

// A Go executable shipped at the ISO root is listed with its modules, and
// the document is reproducible and round-trips through the library.
func TestGoBinaryAndDeterminism(t *testing.T) {
	// A real shipped binary, built by the go command, with its modules.
	gobin := testenv.Need(t, "go")[0]
	root := t.TempDir()
	exe := filepath.Join(root, "bin", "tool")
	build := exec.Command(gobin, "build", "-o", exe, "github.com/metalk8s/buildchain/cmd/registrygen")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(root, "product.txt"), []byte("NAME=MetalK8s\n"), 0o644)
	builder := &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Path: "github.com/metalk8s/buildchain", Version: "v1.2.3"},
		Deps: []*debug.Module{{Path: "example.com/b", Version: "v0.2.0"}, {Path: "example.com/a", Version: "v0.1.0", Replace: &debug.Module{Path: "example.com/a2", Version: "v0.1.1"}}}}
	opts := Options{Product: "MetalK8s", Version: "2.0.0-dev", Epoch: time.Unix(1700000000, 0), Builder: builder}
	var docs [][]byte
	for i := 0; i < 2; i++ {
		bom, err := Generate(context.Background(), os.DirFS(root), opts)
		if err != nil {
			t.Fatal(err)
		}
		data, err := Encode(bom)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
	}
	if !bytes.Equal(docs[0], docs[1]) {
		t.Fatal("two SBOMs of the same tree differ")
	}
	bom := decode(t, docs[0])
	if !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") || bom.Metadata.Timestamp != "2023-11-14T22:13:20Z" {
		t.Fatalf("serial %q, timestamp %q", bom.SerialNumber, bom.Metadata.Timestamp)
	}
	tools := *bom.Metadata.Tools.Components
	if len(tools) != 1 || tools[0].PackageURL != "pkg:golang/github.com/metalk8s/buildchain@v1.2.3" {
		t.Fatalf("tools: %+v", tools)
	}
	var deps []string
	for _, d := range *tools[0].Components {
		deps = append(deps, d.PackageURL)
	}
	if strings.Join(deps, " ") != "pkg:golang/example.com/a2@v0.1.1 pkg:golang/example.com/b@v0.2.0" {
		t.Fatalf("builder modules: %v", deps)
	}
	// go version -m is the oracle for what a shipped binary holds.
	vm, err := exec.Command(gobin, "version", "-m", exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	var wantDeps []string
	for _, l := range strings.Split(string(vm), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "dep" {
			wantDeps = append(wantDeps, "pkg:golang/"+f[1]+"@"+f[2])
		}
	}
	comps := *bom.Components
	if len(comps) != 1 || comps[0].Name != "github.com/metalk8s/buildchain" || comps[0].BOMRef != "binary:bin/tool:github.com/metalk8s/buildchain" {
		t.Fatalf("components: %+v", comps)
	}
	found := false
	for _, p := range *comps[0].Properties {
		found = found || p == cdx.Property{Name: "metalk8s:path", Value: "bin/tool"}
	}
	if !found {
		t.Errorf("the shipped binary lacks its path: %+v", comps[0])
	}
	var gotDeps []string
	for _, d := range *comps[0].Components {
		gotDeps = append(gotDeps, d.PackageURL)
	}
	if len(wantDeps) == 0 || strings.Join(gotDeps, " ") != strings.Join(wantDeps, " ") {
		t.Errorf("modules of bin/tool: %v\nwant (go version -m): %v", gotDeps, wantDeps)
	}

	// The serial follows the content.
	os.WriteFile(filepath.Join(root, "bin", "tool"), nil, 0o755)
	bom2, _ := Generate(context.Background(), os.DirFS(root), opts)
	data, _ := Encode(bom2)
	if decode(t, data).SerialNumber == bom.SerialNumber {
		t.Fatal("a different SBOM kept the serial number")
	}
}

func TestBrokenPartsAreNamed(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "packages/redhat/base"), 0o755)
	_, err := Generate(context.Background(), os.DirFS(root), Options{})
	if err == nil || !strings.Contains(err.Error(), "repository base has no packages/redhat/base/repodata/repomd.xml") {
		t.Fatalf("repository without repodata: %v", err)
	}
	root = t.TempDir()
	os.MkdirAll(filepath.Join(root, "images/alpha/1.0"), 0o755)
	os.WriteFile(filepath.Join(root, "images/alpha/1.0/manifest.json"), []byte("{"), 0o644)
	_, err = Generate(context.Background(), os.DirFS(root), Options{})
	if err == nil || !strings.Contains(err.Error(), "image images/alpha/1.0") {
		t.Fatalf("broken image: %v", err)
	}
}
