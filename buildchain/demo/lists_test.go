package demo

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
)

// The demo's packages.yaml is the real one with only the base URLs and
// keys of the repositories that have one changed, and the dropped local
// package gone from local: and from its set.
func TestDerivePackages(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	realFile := filepath.Join(filepath.Dir(file), "..", "..", "packages", "packages.yaml")
	data, err := os.ReadFile(realFile)
	if err != nil {
		t.Fatal(err)
	}
	real, err := pkglist.Parse(realFile, data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := derivePackages(data, realFile, "http://127.0.0.1:1234/", "KEY", map[string]bool{"metalk8s-installer.yaml": true, "metalk8s-installer": true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pkglist.Parse("derived", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Repos) != len(real.Repos) || len(got.Sets) != len(real.Sets) || len(got.Local) != len(real.Local)-1 {
		t.Fatalf("derived:\n%s", out)
	}
	for i, r := range got.Repos {
		want := real.Repos[i]
		if r.Name != want.Name || r.Kind != want.Kind {
			t.Errorf("repo %d: %+v, want %+v", i, r, want)
		}
		if want.BaseURL == "" {
			if r.BaseURL != "" || len(r.GPGKeys) != 0 {
				t.Errorf("%s: a repository built here got %q %v", r.Name, r.BaseURL, r.GPGKeys)
			}
			continue
		}
		if r.BaseURL != "http://127.0.0.1:1234/"+r.Name+"/" || len(r.GPGKeys) != 1 || r.GPGKeys[0] != "http://127.0.0.1:1234/KEY" {
			t.Errorf("%s: %q %v", r.Name, r.BaseURL, r.GPGKeys)
		}
	}
	for i, s := range got.Sets {
		want := real.Sets[i].Packages
		var kept []pkglist.Package
		for _, p := range want {
			if p.Name != "metalk8s-installer" {
				kept = append(kept, p)
			}
		}
		if len(s.Packages) != len(kept) {
			t.Errorf("set %s: %v, want %v", s.Name, s.Packages, kept)
			continue
		}
		for j, p := range s.Packages {
			if p.Name != kept[j].Name || p.Version != kept[j].Version {
				t.Errorf("set %s: %+v, want %+v", s.Name, p, kept[j])
			}
		}
	}
	if strings.Contains(string(out), "metalk8s-installer") {
		t.Errorf("the dropped package is still named:\n%s", out)
	}
}
