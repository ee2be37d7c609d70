package solution

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodSource = `name: example-solution
version: 1.0.0
require_metalk8s: ">=2.0"
binaries:
  op: ./operator
images:
  - {name: nginx, version: 1.25.3, source: docker.io/library/nginx, digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}
  - {name: app, version: 1.0.0, oci: layouts/app, ref: "1.0.0"}
  - {name: tool, version: 2.1.0, docker-archive: tool.tar}
  - {name: db/server, version: 3.0.0, dir: images/db}
  - {name: op, version: 1.0.0, build: operator/image.yaml}
`

func TestParseSource(t *testing.T) {
	s, err := ParseSource("solution.yaml", []byte(goodSource))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "example-solution" || len(s.Images) != 5 || s.Images[3].Kind != FromDir || s.Images[0].Kind != FromRegistry || s.Binaries["op"] != "./operator" || s.Operator != "operator/deploy" {
		t.Fatalf("got %+v", s)
	}
	for _, tc := range []struct{ text, want string }{
		{"", "empty"},
		{"[]", "want a mapping"},
		{"name: x\nversion: 1.0.0\n", "require_metalk8s is missing"},
		{strings.Replace(goodSource, "require_metalk8s", "require", 1), `solution.yaml:3: unknown field "require"`},
		{strings.Replace(goodSource, `">=2.0"`, `"soon"`, 1), "solution.yaml:3: require_metalk8s"},
		{strings.Replace(goodSource, "version: 1.0.0\n", "version: 1.0\n", 1), "version"},
		{strings.Replace(goodSource, ", ref: \"1.0.0\"", ", dir: x", 1), "solution.yaml:8: image app:1.0.0 needs exactly one source"},
		{strings.Replace(goodSource, "sha256:0000000000000000000000000000000000000000000000000000000000000000", "latest", 1), "pinned by digest"},
		{strings.Replace(goodSource, "name: tool", "name: Tool", 1), "not a valid repository name"},
		{strings.Replace(goodSource, "name: tool, version: 2.1.0", "name: app, version: 1.0.0", 1), "already listed on line 8"},
		{strings.Replace(goodSource, "./operator", "github.com/x/y", 1), "relative package path"},
		{goodSource + "extra: &a 1\n", "anchors"},
		{goodSource + "---\nname: x\n", "second YAML document"},
		{strings.Replace(goodSource, "oci: layouts/app", "oci: layouts/app, colour: red", 1), `unknown image field "colour"`},
	} {
		_, err := ParseSource("solution.yaml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSource(%q) = %v, want an error with %q", tc.text, err, tc.want)
		}
	}
}

func TestLoadSourceResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SourceFile), []byte(goodSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ui"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ui", "deployment.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != dir || s.Operator != filepath.Join(dir, "operator", "deploy") || s.UI != filepath.Join(dir, "ui", "deployment.yaml") || s.Images[1].Path != filepath.Join(dir, "layouts", "app") {
		t.Fatalf("got %+v", s)
	}
}

// FuzzParseSource: no panic, and what parses is coherent: valid names,
// versions and digests, one source per image, no duplicate.
func FuzzParseSource(f *testing.F) {
	f.Add([]byte(goodSource))
	f.Add([]byte("name: a\nversion: 0.0.1\nrequire_metalk8s: '2.0'\nimages: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSource("f.yaml", data)
		if err != nil {
			return
		}
		if err := CheckNameVersion(s.Name, s.Version); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, im := range s.Images {
			if im.Kind == "" || seen[im.Name+":"+im.Version] {
				t.Fatalf("image %+v", im)
			}
			seen[im.Name+":"+im.Version] = true
			if (im.Kind == FromRegistry) != (im.Digest != "") {
				t.Fatalf("digest without registry source: %+v", im)
			}
		}
	})
}
