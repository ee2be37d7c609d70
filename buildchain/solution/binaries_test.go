package solution

import (
	"context"
	"debug/buildinfo"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The binaries of a Solution go through gobin: for arm the variant is the
// GOARM they are built with, and arm/v6 and arm/v7 builds are two
// binaries, not one reused for both.
func TestBuildBinariesARMVariants(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":           "module example.com/sol\n\ngo 1.26\n",
		"operator/main.go": "package main\n\nfunc main() { println(\"op\") }\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &imageMaker{src: &Source{Dir: dir, Binaries: map[string]string{"op": "./operator"}}, binDir: t.TempDir(), built: map[string]string{}}
	seen := map[string]bool{}
	for _, v := range []string{"v6", "v7", "v6"} {
		bins, err := m.buildBinaries(context.Background(), v1.Platform{OS: "linux", Architecture: "arm", Variant: v}, []string{"op"})
		if err != nil {
			t.Fatal(err)
		}
		bi, err := buildinfo.ReadFile(bins["op"])
		if err != nil {
			t.Fatal(err)
		}
		goarm := ""
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				goarm = s.Value
			}
		}
		if goarm != v[1:] {
			t.Errorf("arm/%s: binary %s has GOARM=%q", v, bins["op"], goarm)
		}
		seen[bins["op"]] = true
	}
	if len(seen) != 2 {
		t.Errorf("arm/v6 and arm/v7 gave %d binaries, want 2: %v", len(seen), seen)
	}
	if _, err := m.buildBinaries(context.Background(), v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"nope"}); err == nil {
		t.Error("an unknown binary name was accepted")
	}
}
