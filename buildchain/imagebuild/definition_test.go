package imagebuild

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseFull(t *testing.T) {
	d, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Definition{
		Path:    "testdata/full.yaml",
		Name:    "tools",
		Version: "1.10",
		Base: &Base{
			Source: "registry.example.com/base/image",
			Digest: v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			Line:   5,
		},
		Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		Layers: []Layer{
			{
				Line: 9,
				Dirs: []Dir{
					{Path: "/var/lib/tools", Mode: fs.ModeDir | 0o755, Line: 10},
					{Path: "/etc/tools", Mode: fs.ModeDir | 0o700, Line: 11},
				},
				Files: []File{
					{Src: "testdata/tree/etc/tools.conf", Dst: "/etc/tools/", Mode: 0o600, Line: 13},
					{Src: "testdata/tree/run.sh", Dst: "/usr/bin/run", Mode: 0o755, Line: 14},
				},
			},
			{
				Line: 15,
				Files: []File{
					{Src: "build:*", Dst: "/usr/local/bin/", Mode: 0o755, Line: 16},
					{Src: "build:mkiso", Dst: "/opt/mkiso", Mode: 0o755, Line: 17},
				},
			},
		},
		Config: Config{
			Entrypoint: []string{"/usr/bin/run"},
			Cmd:        []string{},
			Env:        []string{"PATH=/usr/local/bin:/usr/bin", "TOOLS_VERSION={{version}}"},
			Labels: map[string]string{
				"org.opencontainers.image.title":   "tools",
				"org.opencontainers.image.version": "{{version}}",
			},
			WorkingDir: "/var/lib/tools",
			User:       "1000:1000",
		},
		Line: 2,
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("parsed:\n%+v\nwant:\n%+v", d, want)
	}

	bins, all := d.Binaries()
	if !all || !reflect.DeepEqual(bins, []string{"mkiso"}) {
		t.Errorf("Binaries() = %q, %v", bins, all)
	}
	abs, _ := filepath.Abs("testdata/full.yaml")
	in := d.Inputs("/project")
	if wantIn := []string{abs, "/project/testdata/tree/etc/tools.conf", "/project/testdata/tree/run.sh"}; !reflect.DeepEqual(in, wantIn) {
		t.Errorf("Inputs = %q, want %q", in, wantIn)
	}
}

func TestParseDefaults(t *testing.T) {
	d, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.Base != nil || !reflect.DeepEqual(d.Platform, v1.Platform{OS: "linux", Architecture: "amd64"}) {
		t.Errorf("base %v, platform %v; want scratch, linux/amd64", d.Base, d.Platform)
	}
	if f := d.Layers[0].Files[0]; f.Mode != 0o644 {
		t.Errorf("default file mode %v, want 0644", f.Mode)
	}
	if d.Config.Entrypoint != nil || d.Config.Cmd != nil || d.Config.Env != nil {
		t.Errorf("unset config fields are not nil: %+v", d.Config)
	}
	if _, err := d.ResolveVersion(""); err == nil {
		t.Error("version product with no product version was accepted")
	}
	if v, err := d.ResolveVersion("2.4.1-dev"); err != nil || v != "2.4.1-dev" {
		t.Errorf("ResolveVersion = %q, %v", v, err)
	}
}

// The project's own definition loads, and takes every CLI.
func TestUtilsDefinition(t *testing.T) {
	defs, err := LoadDir("../../images")
	if err != nil {
		t.Fatal(err)
	}
	var d *Definition
	for _, x := range defs {
		if x.Name == "metalk8s-utils" {
			d = x
		}
	}
	if d == nil {
		t.Fatal("images/metalk8s-utils/image.yaml was not found by LoadDir")
	}
	if _, all := d.Binaries(); !all || d.Base != nil || d.Version != ProductVersion {
		t.Errorf("metalk8s-utils: want scratch, the product version and every CLI; got %+v", d)
	}
}

func TestLoadDirNameMismatch(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "other", "image.yaml")
	os.MkdirAll(filepath.Dir(p), 0o755)
	data, _ := os.ReadFile("testdata/minimal.yaml")
	os.WriteFile(p, data, 0o644)
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), p+":1:") || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("LoadDir with a misnamed definition: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load("testdata/nope.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
}

// Every error names the file and the line of the offending node.
func TestParseErrors(t *testing.T) {
	const head = "name: x\nversion: '1'\nbase: scratch\n"
	const layer = "layers:\n  - files:\n      - {src: a, dst: /a}\n"
	for _, tc := range []struct {
		name, yaml string
		line       int
		msg        string
	}{
		{"empty", "", 0, "empty image definition"},
		{"comment only", "# nothing\n", 0, "empty image definition"},
		{"syntax", "name: [x\n", 1, "invalid YAML"},
		{"two docs", head + layer + "---\nname: y\n", 7, "second YAML document"},
		{"not a mapping", "- a\n", 1, "must be a mapping"},
		{"unknown top", head + layer + "labels: {}\n", 7, `unknown field "labels"`},
		{"duplicate key", head + "name: y\n" + layer, 4, `duplicate key "name"`},
		{"missing name", "version: '1'\nbase: scratch\n" + layer, 1, "missing field name"},
		{"missing version", "name: x\nbase: scratch\n" + layer, 1, "missing field version"},
		{"missing base", "name: x\nversion: '1'\n" + layer, 1, "missing field base"},
		{"scratch without layers", head, 1, "at least one layer"},
		{"bad name", "name: X_Y\nversion: '1'\nbase: scratch\n" + layer, 1, "not a valid image name"},
		{"bad version", "name: x\nversion: 'a b'\nbase: scratch\n" + layer, 2, "valid image tag"},
		{"null version", "name: x\nversion:\nbase: scratch\n" + layer, 2, "version must be a string"},
		{"base word", "name: x\nversion: '1'\nbase: alpine\n" + layer, 3, "base must be scratch"},
		{"base unpinned", "name: x\nversion: '1'\nbase: {source: docker.io/library/alpine}\n", 3, "both source and digest"},
		{"base short digest", "name: x\nversion: '1'\nbase: {source: docker.io/library/alpine, digest: sha256:abc}\n", 3, "64 lowercase hex"},
		{"base no registry", "name: x\nversion: '1'\nbase: {source: library/alpine, digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}\n", 3, "not a registry host"},
		{"base upper repo", "name: x\nversion: '1'\nbase:\n  source: docker.io/Library/alpine\n  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 4, "repository component"},
		{"base extra", "name: x\nversion: '1'\nbase:\n  source: docker.io/a\n  tag: latest\n", 5, `unknown field "tag"`},
		{"platform", head + "platform: linux\n" + layer, 4, "os/architecture"},
		{"platform case", head + "platform: Linux/amd64\n" + layer, 4, "not a valid os"},
		{"layers not list", head + "layers: {}\n", 4, "layers must be a list"},
		{"empty layer", head + "layers:\n  - {}\n", 5, "empty layer"},
		{"layer unknown", head + "layers:\n  - files: []\n    owner: root\n", 6, `unknown field "owner"`},
		{"file no dst", head + "layers:\n  - files:\n      - {src: a}\n", 6, "needs src and dst"},
		{"src absolute", head + "layers:\n  - files:\n      - {src: /etc/passwd, dst: /a}\n", 6, "relative to the project root"},
		{"src dotdot", head + "layers:\n  - files:\n      - {src: ../secret, dst: /a}\n", 6, "leaves the project root"},
		{"src unclean", head + "layers:\n  - files:\n      - {src: a//b, dst: /a}\n", 6, "not clean"},
		{"src bad cli", head + "layers:\n  - files:\n      - {src: 'build:../x', dst: /a}\n", 6, "not a CLI name"},
		{"all to file", head + "layers:\n  - files:\n      - {src: 'build:*', dst: /usr/bin}\n", 6, "must end with /"},
		{"dst relative", head + "layers:\n  - files:\n      - {src: a, dst: usr/a}\n", 6, "must be absolute"},
		{"dst dotdot", head + "layers:\n  - files:\n      - {src: a, dst: /usr/../etc/a}\n", 6, "not clean"},
		{"dst root", head + "layers:\n  - files:\n      - {src: a, dst: /}\n", 6, "root directory"},
		{"mode decimal", head + "layers:\n  - files:\n      - {src: a, dst: /a, mode: 755}\n", 6, "leading 0"},
		{"mode not octal", head + "layers:\n  - files:\n      - {src: a, dst: /a, mode: 0799}\n", 6, "not octal"},
		{"mode setuid", head + "layers:\n  - files:\n      - {src: a, dst: /a, mode: 04755}\n", 6, "setuid"},
		{"mode unreadable", head + "layers:\n  - files:\n      - {src: a, dst: /a, mode: 0044}\n", 6, "owner needs"},
		{"dir mode", head + "layers:\n  - dirs:\n      - {path: /d, mode: 0600}\n", 6, "owner needs"},
		{"dir relative", head + "layers:\n  - dirs: [d]\n", 5, "must be absolute"},
		{"same dst", head + "layers:\n  - files:\n      - {src: a, dst: /x}\n      - {src: b, dst: /x}\n", 7, "already written by line 6"},
		{"file as dir", head + "layers:\n  - files:\n      - {src: a, dst: /x}\n      - {src: b, dst: /x/}\n", 7, "needs /x to be a directory"},
		{"dir twice", head + "layers:\n  - dirs: [/d, /d]\n", 5, "listed twice"},
		{"entrypoint shell form", head + layer + "config:\n  entrypoint: /bin/run\n", 8, "exec form"},
		{"env no equals", head + layer + "config:\n  env: [FOO]\n", 8, "KEY=VALUE"},
		{"env bad key", head + layer + "config:\n  env: ['1X=2']\n", 8, "KEY=VALUE"},
		{"env twice", head + layer + "config:\n  env: [A=1, A=2]\n", 8, "set twice"},
		{"env placeholder", head + layer + "config:\n  env: ['A={{name}}']\n", 8, "only placeholder"},
		{"label key", head + layer + "config:\n  labels: {Bad Key: x}\n", 8, "reverse-DNS"},
		{"label reserved", head + layer + "config:\n  labels: {com.docker.foo: x}\n", 8, "reserved by Docker"},
		{"label dup", head + layer + "config:\n  labels:\n    a.b: x\n    a.b: y\n", 10, "set twice"},
		{"label null", head + layer + "config:\n  labels:\n    a.b:\n", 9, "must be a string"},
		{"workdir", head + layer + "config:\n  workdir: srv\n", 8, "must be absolute"},
		{"user", head + layer + "config:\n  user: 'a b'\n", 8, "USER:GROUP"},
		{"config unknown", head + layer + "config:\n  expose: [80]\n", 8, `unknown field "expose"`},
		{"alias", "name: &n x\nversion: '1'\nbase: scratch\n" + layer, 1, "anchors and aliases"},
		{"custom tag", head + layer + "config:\n  user: !secret root\n", 8, "custom YAML tag"},
		{"nul", head + layer + "config:\n  user: \"a\\0b\"\n", 8, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("defs/x.yaml", []byte(tc.yaml))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want an *Error", err, err)
			}
			if e.File != "defs/x.yaml" || e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("err = %q (line %d), want line %d and %q", err, e.Line, tc.line, tc.msg)
			}
			prefix := "defs/x.yaml: "
			if tc.line > 0 {
				prefix = "defs/x.yaml:" + strconv.Itoa(tc.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("err = %q, want it to start with %q", err, prefix)
			}
		})
	}
}
