package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestParseList(t *testing.T) {
	src := `# upstream images
- name: kube-apiserver
  version: v1.12.10
  source: k8s.gcr.io/kube-apiserver
  digest: ` + digestA + `
- name: library/nginx
  version: "1.15.8"
  source: docker.io/library/nginx
  digest: ` + digestA + `
`
	list, err := ParseList("images.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Line != 2 || list[1].Name != "library/nginx" || list[1].Version != "1.15.8" || list[1].Registry() != "docker.io" {
		t.Fatalf("got %+v", list)
	}
}

func TestParseListErrors(t *testing.T) {
	entry := func(extra string) string {
		return "- name: a\n  version: v1\n  source: docker.io/x/a\n  digest: " + digestA + "\n" + extra
	}
	for _, tc := range []struct{ src, want string }{
		{"name: a", "images.yaml:1: want a list of images"},
		{"- 3", "images.yaml:1: want an image mapping"},
		{entry("  tag: x\n"), `images.yaml:5: unknown field "tag"`},
		{"- name: a\n  version: v1\n  source: docker.io/x/a\n", `images.yaml:1: image is missing "digest"`},
		{strings.Replace(entry(""), digestA, "sha256:abc", 1), "images.yaml:1: image a: digest \"sha256:abc\" is not sha256"},
		{strings.Replace(entry(""), "name: a", "name: A", 1), `images.yaml:1: name "A" is not a valid repository name`},
		{strings.Replace(entry(""), "name: a", "name: ../etc", 1), `not a valid repository name`},
		{strings.Replace(entry(""), "version: v1", "version: 'v1;rm'", 1), `version "v1;rm" is not a valid tag`},
		{strings.Replace(entry(""), "docker.io/x/a", "x/a", 1), `source "x/a" is not registry/repository`},
		{entry("") + entry(""), "images.yaml:5: image a:v1 is already listed on line 1"},
		{entry("  name: b\n"), `images.yaml:5: field "name" is given twice`},
		{"- name: [a]\n", `images.yaml:1: name: want a string`},
		{"- {name: a\n", "images.yaml:1: invalid YAML: did not find expected"},
		{"[]\n---\n[]\n", "images.yaml:2: only one YAML document"},
		{"[]\n---\n- {\n", "images.yaml:3: invalid YAML"},
		{"- &e {name: a}\n- *e\n", "images.yaml:1: YAML anchors and aliases are not allowed"},
		{"- !img {name: a}\n", "images.yaml:1: custom YAML tag !img"},
	} {
		_, err := ParseList("images.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.src, err, tc.want)
		}
	}
}

// A list with no document lists no images. The decoder says so with
// io.EOF, which the parser must recognise as a value, not as the text
// "EOF" that a wrapped or different error could also print.
func TestParseListEmpty(t *testing.T) {
	for _, src := range []string{"", "\n", "# no images yet\n"} {
		list, err := ParseList("images.yaml", []byte(src))
		if err != nil || len(list) != 0 {
			t.Errorf("%q: got %v, %v; want no images and no error", src, list, err)
		}
	}
	// An empty list is fine too, but a null document is not a list.
	if list, err := ParseList("images.yaml", []byte("[]\n")); err != nil || len(list) != 0 {
		t.Errorf("[]: %v %v", list, err)
	}
	if _, err := ParseList("images.yaml", []byte("~\n")); err == nil || !strings.Contains(err.Error(), "images.yaml:1: want a list of images, got nothing") {
		t.Errorf("~: %v", err)
	}
}

// The shipped list must parse, and pin every image by digest.
func TestShippedImagesList(t *testing.T) {
	data, err := os.ReadFile("../../images/images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	list, err := ParseList("images.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 20 {
		t.Fatalf("only %d images listed", len(list))
	}
}

func FuzzParseList(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../../images/images.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := ParseList("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever parses is safe to use as a path and in a config.
		for _, im := range list {
			if !ValidName(im.Name) || !ValidTag(im.Version) || !ValidDigest(im.Digest) {
				t.Fatalf("invalid entry accepted: %+v", im)
			}
			if strings.Contains(im.Name, "..") || strings.ContainsAny(im.Name+im.Version, " ;{}$'\"\n") {
				t.Fatalf("unsafe entry accepted: %+v", im)
			}
		}
	})
}
