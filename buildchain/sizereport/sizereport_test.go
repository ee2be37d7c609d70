package sizereport

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

// Repositories and inputs are summed per path; an unreadable image is an
// error naming it. (Images' shared bytes are checked on real pulled
// images in buildchain/targets TestIsoSizeReport.)
func TestReposInputsAndErrors(t *testing.T) {
	fsys := fstest.MapFS{
		"product.txt":                                  {Data: []byte("12345")},
		"packages/redhat/base/a.rpm":                   {Data: make([]byte, 100)},
		"packages/redhat/base/repodata/repomd.xml":     {Data: make([]byte, 10)},
		"packages/redhat/metalk8s/b.rpm":               {Data: make([]byte, 7)},
		"packages/redhat/metalk8s/repodata/repomd.xml": {Data: make([]byte, 3)},
	}
	r, err := Build(context.Background(), fsys, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := []Repo{{"base", 110}, {"metalk8s", 10}}
	if len(r.Repos) != 2 || r.Repos[0] != want[0] || r.Repos[1] != want[1] {
		t.Fatalf("repos %+v, want %+v", r.Repos, want)
	}
	if r.Inputs != 125 || r.InputsN != 5 || r.ISO != 1000 || r.Overhead != 875 || len(r.Images) != 0 {
		t.Fatalf("%+v", r)
	}
	var out bytes.Buffer
	r.Print(&out)
	if !strings.Contains(out.String(), "repo base: 110 B\n") || !strings.Contains(out.String(), "ISO 1000 B for 125 B of inputs in 5 files (+875 bytes)") {
		t.Fatalf("printed:\n%s", out.String())
	}

	fsys["images/alpha/1.0/manifest.json"] = &fstest.MapFile{Data: []byte("{")}
	if _, err := Build(context.Background(), fsys, 1000); err == nil || !strings.Contains(err.Error(), "image images/alpha/1.0") {
		t.Fatalf("broken image: %v", err)
	}
}
