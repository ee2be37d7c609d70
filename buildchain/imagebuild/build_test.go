package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var testEpoch = time.Date(2024, 5, 17, 10, 30, 0, 0, time.UTC)

const testDef = `name: tools
version: product
base: scratch
layers:
  - dirs:
      - {path: /etc/tools, mode: 0700}
      - /var/empty
    files:
      - {src: conf/tools.conf, dst: /etc/tools/, mode: 0600}
      - {src: bin/run.sh, dst: /usr/bin/run, mode: 0755}
      - {src: "build:*", dst: /usr/local/bin/}
  - files:
      - {src: conf/tools.conf, dst: /usr/share/tools/defaults.conf}
config:
  entrypoint: [/usr/bin/run]
  env: [PATH=/usr/local/bin:/usr/bin, 'TOOLS_VERSION={{version}}']
  labels:
    org.opencontainers.image.title: tools
    org.opencontainers.image.version: "{{version}}"
  workdir: /var/empty
  user: "1000"
`

// project makes a project tree and the fake CLI binaries Build takes.
func project(t *testing.T) (root string, bins map[string]string) {
	t.Helper()
	root = t.TempDir()
	write := func(rel, body string, mode os.FileMode) string {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Host modes differ from the declared ones on purpose: the
	// definition's modes win.
	write("conf/tools.conf", "verbose = true\n", 0o666)
	write("bin/run.sh", "#!/bin/sh\nexec \"$@\"\n", 0o600)
	bins = map[string]string{
		"mkiso":       write("dist/bin/mkiso", "\x7fELF mkiso", 0o700),
		"registrygen": write("dist/bin/registrygen", "\x7fELF registrygen", 0o700),
	}
	return root, bins
}

func parse(t *testing.T, def string) *Definition {
	t.Helper()
	d, err := Parse("images/tools/image.yaml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func build(t *testing.T, d *Definition, opts Options) v1.Image {
	t.Helper()
	img, err := Build(context.Background(), d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type member struct {
	hdr  tar.Header
	body string
}

// members reads a layer's tar through go-containerregistry.
func members(t *testing.T, l v1.Layer) []member {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{*h, string(body)})
	}
}

func TestBuildReproducible(t *testing.T) {
	root, bins := project(t)
	d := parse(t, testDef)
	opts := Options{ProjectRoot: root, Epoch: testEpoch, ProductVersion: "2.4.1", Binaries: bins}
	first := digest(t, build(t, d, opts))
	// A fresh parse and build, with the binaries map in another order.
	bins2 := map[string]string{"registrygen": bins["registrygen"], "mkiso": bins["mkiso"]}
	again := digest(t, build(t, parse(t, testDef), Options{ProjectRoot: root, Epoch: testEpoch, ProductVersion: "2.4.1", Binaries: bins2}))
	if first != again {
		t.Fatalf("two builds of the same inputs: %s then %s", first, again)
	}
	// A sub-second epoch is truncated the same way everywhere.
	if got := digest(t, build(t, d, Options{ProjectRoot: root, Epoch: testEpoch.Add(300 * time.Millisecond).In(time.FixedZone("X", 3600)), ProductVersion: "2.4.1", Binaries: bins})); got != first {
		t.Errorf("the same second in another zone gives %s, want %s", got, first)
	}

	changed := map[string]func(o *Options, d **Definition){
		"epoch":           func(o *Options, _ **Definition) { o.Epoch = testEpoch.Add(time.Second) },
		"product version": func(o *Options, _ **Definition) { o.ProductVersion = "2.4.2" },
		"a file": func(o *Options, _ **Definition) {
			p := filepath.Join(o.ProjectRoot, "conf", "tools.conf")
			if err := os.WriteFile(p, []byte("verbose = false\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"a binary": func(o *Options, _ **Definition) {
			if err := os.WriteFile(o.Binaries["mkiso"], []byte("\x7fELF mkiso v2"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		"a mode": func(_ *Options, d **Definition) {
			*d = parse(t, strings.Replace(testDef, "mode: 0600", "mode: 0640", 1))
		},
		"a label": func(_ *Options, d **Definition) {
			*d = parse(t, strings.Replace(testDef, "title: tools", "title: tools2", 1))
		},
	}
	for what, change := range changed {
		t.Run(what, func(t *testing.T) {
			root, bins := project(t)
			o := Options{ProjectRoot: root, Epoch: testEpoch, ProductVersion: "2.4.1", Binaries: bins}
			dd := parse(t, testDef)
			if got := digest(t, build(t, dd, o)); got != first {
				t.Fatalf("a fresh project tree gives %s, want %s", got, first)
			}
			change(&o, &dd)
			if got := digest(t, build(t, dd, o)); got == first {
				t.Errorf("changing %s kept the digest %s", what, got)
			}
		})
	}
}

func TestBuildContents(t *testing.T) {
	root, bins := project(t)
	img := build(t, parse(t, testDef), Options{ProjectRoot: root, Epoch: testEpoch, ProductVersion: "2.4.1", Binaries: bins})

	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s; want OCI", m.MediaType, m.Config.MediaType)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 || len(m.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s, want %s", l.MediaType, types.OCILayer)
		}
	}

	type want struct {
		name string
		typ  byte
		mode int64
		body string
	}
	wants := []want{
		{"etc/", tar.TypeDir, 0o755, ""},
		{"etc/tools/", tar.TypeDir, 0o700, ""},
		{"etc/tools/tools.conf", tar.TypeReg, 0o600, "verbose = true\n"},
		{"usr/", tar.TypeDir, 0o755, ""},
		{"usr/bin/", tar.TypeDir, 0o755, ""},
		{"usr/bin/run", tar.TypeReg, 0o755, "#!/bin/sh\nexec \"$@\"\n"},
		{"usr/local/", tar.TypeDir, 0o755, ""},
		{"usr/local/bin/", tar.TypeDir, 0o755, ""},
		{"usr/local/bin/mkiso", tar.TypeReg, 0o755, "\x7fELF mkiso"},
		{"usr/local/bin/registrygen", tar.TypeReg, 0o755, "\x7fELF registrygen"},
		{"var/", tar.TypeDir, 0o755, ""},
		{"var/empty/", tar.TypeDir, 0o755, ""},
	}
	got := members(t, layers[0])
	if len(got) != len(wants) {
		var names []string
		for _, g := range got {
			names = append(names, g.hdr.Name)
		}
		t.Fatalf("layer 1 members %q, want %d", names, len(wants))
	}
	for i, w := range wants {
		h := got[i].hdr
		if h.Name != w.name || h.Typeflag != w.typ || h.Mode != w.mode || got[i].body != w.body {
			t.Errorf("member %d: %s type %c mode %o %q; want %s type %c mode %o %q",
				i, h.Name, h.Typeflag, h.Mode, got[i].body, w.name, w.typ, w.mode, w.body)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(testEpoch) ||
			!h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || len(h.PAXRecords) != 0 || h.Format != tar.FormatUSTAR {
			t.Errorf("member %s carries host data: %+v", h.Name, h)
		}
	}
	if got := members(t, layers[1]); len(got) != 4 || got[3].hdr.Name != "usr/share/tools/defaults.conf" || got[3].hdr.Mode != 0o644 {
		t.Errorf("layer 2: %+v", got)
	}

	// The gzip header: no file name, no mtime, so it depends on nothing
	// but the data.
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 10)
	io.ReadFull(rc, head)
	rc.Close()
	if head[0] != 0x1f || head[1] != 0x8b || head[3] != 0 || binary.LittleEndian.Uint32(head[4:8]) != 0 {
		t.Errorf("gzip header % x: want no flags and a zero mtime", head)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Equal(testEpoch) || cf.OS != "linux" || cf.Architecture != "amd64" || cf.Variant != "" {
		t.Errorf("config created %v, platform %s/%s/%s", cf.Created, cf.OS, cf.Architecture, cf.Variant)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/usr/bin/run"}) || c.Cmd != nil || c.WorkingDir != "/var/empty" || c.User != "1000" || c.Hostname != "" {
		t.Errorf("config: %+v", c)
	}
	if want := []string{"PATH=/usr/local/bin:/usr/bin", "TOOLS_VERSION=2.4.1"}; !reflect.DeepEqual(c.Env, want) {
		t.Errorf("env %q, want %q", c.Env, want)
	}
	if want := map[string]string{"org.opencontainers.image.title": "tools", "org.opencontainers.image.version": "2.4.1"}; !reflect.DeepEqual(c.Labels, want) {
		t.Errorf("labels %v, want %v", c.Labels, want)
	}
	if len(cf.History) != 2 || !cf.History[0].Created.Equal(testEpoch) || cf.History[0].CreatedBy != "metalk8s imagebuild tools: layer 1 of 2, 12 entries" {
		t.Errorf("history %+v", cf.History)
	}
	raw, _ := img.RawConfigFile()
	if bytes.Contains(raw, []byte(root)) {
		t.Errorf("the config names the project root %s:\n%s", root, raw)
	}
}

// A long path needs PAX; the result must still be deterministic.
func TestBuildLongPath(t *testing.T) {
	root, _ := project(t)
	long := "/opt/" + strings.Repeat("very-long-directory-name/", 8) + "file.conf"
	def := "name: x\nversion: '1'\nbase: scratch\nlayers:\n  - files:\n      - {src: conf/tools.conf, dst: " + long + "}\n"
	a := build(t, parse(t, def), Options{ProjectRoot: root, Epoch: testEpoch})
	b := build(t, parse(t, def), Options{ProjectRoot: root, Epoch: testEpoch})
	if digest(t, a) != digest(t, b) {
		t.Error("a PAX entry made two builds differ")
	}
	layers, _ := a.Layers()
	ms := members(t, layers[0])
	if last := ms[len(ms)-1]; "/"+last.hdr.Name != long || last.body != "verbose = true\n" {
		t.Errorf("long member %q", last.hdr.Name)
	}
}

// baseImage builds a small image to build on, for platform p.
func testBase(t *testing.T, p string) v1.Image {
	t.Helper()
	root, _ := project(t)
	def := "name: base\nversion: '1'\nbase: scratch\nplatform: " + p + "\n" +
		"layers:\n  - files:\n      - {src: conf/tools.conf, dst: /etc/base.conf}\n" +
		"config:\n  cmd: [/bin/sh]\n  env: [PATH=/bin, LANG=C.UTF-8]\n  labels: {org.example.base: 'yes'}\n  user: nobody\n"
	return build(t, parse(t, def), Options{ProjectRoot: root, Epoch: testEpoch.Add(-time.Hour)})
}

const onBase = `name: derived
version: '3'
base: {source: registry.example.com/base, digest: sha256:0000000000000000000000000000000000000000000000000000000000000000}
layers:
  - files:
      - {src: bin/run.sh, dst: /usr/bin/run, mode: 0755}
config:
  entrypoint: [/usr/bin/run]
  env: [PATH=/usr/bin:/bin]
  labels: {org.example.derived: 'yes'}
`

func TestBuildOnBase(t *testing.T) {
	root, _ := project(t)
	base := testBase(t, "linux/amd64")
	var asked []string
	fetch := func(ctx context.Context, source string, d v1.Hash, p v1.Platform) (v1.Image, error) {
		asked = append(asked, source+"@"+d.String()+" "+platformString(p))
		return base, nil
	}
	img := build(t, parse(t, onBase), Options{ProjectRoot: root, Epoch: testEpoch, BaseFetcher: fetch})
	if want := []string{"registry.example.com/base@sha256:0000000000000000000000000000000000000000000000000000000000000000 linux/amd64"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("fetcher asked %q, want %q", asked, want)
	}
	checkDerived(t, base, img)
}

// checkDerived checks an image built from onBase over base.
func checkDerived(t *testing.T, base, img v1.Image) {
	t.Helper()
	bl, _ := base.Layers()
	il, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(il) != len(bl)+1 {
		t.Fatalf("%d layers, want the base's %d plus 1", len(il), len(bl))
	}
	for i := range bl {
		a, _ := bl[i].Digest()
		b, _ := il[i].Digest()
		if a != b {
			t.Errorf("layer %d is %s, want the base's %s", i, b, a)
		}
	}
	cf, _ := img.ConfigFile()
	c := cf.Config
	if !reflect.DeepEqual(c.Env, []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}) {
		t.Errorf("env %q: want PATH replaced in place and LANG kept", c.Env)
	}
	if c.Cmd != nil || !reflect.DeepEqual(c.Entrypoint, []string{"/usr/bin/run"}) {
		t.Errorf("entrypoint %q cmd %q: a new entrypoint drops the base cmd", c.Entrypoint, c.Cmd)
	}
	if c.User != "nobody" || c.Labels["org.example.base"] != "yes" || c.Labels["org.example.derived"] != "yes" {
		t.Errorf("base user and labels not kept: %+v", c)
	}
	if len(cf.History) != 2 || !cf.History[1].Created.Equal(testEpoch) || !cf.Created.Equal(testEpoch) {
		t.Errorf("history %+v, created %v", cf.History, cf.Created)
	}
}

// A Docker-format base gets a Docker layer: a manifest does not mix formats.
func TestBuildOnDockerBase(t *testing.T) {
	root, _ := project(t)
	oci := testBase(t, "linux/amd64")
	layers, _ := oci.Layers()
	cf, _ := oci.ConfigFile()
	docker, err := mutate.Append(empty.Image, mutate.Addendum{Layer: &memLayerAs{layers[0], types.DockerLayer}})
	if err != nil {
		t.Fatal(err)
	}
	cf.RootFS.DiffIDs = nil
	docker, _ = mutate.ConfigFile(docker, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: cf.Config, RootFS: v1.RootFS{Type: "layers", DiffIDs: mustDiffIDs(t, layers[:1])}})
	fetch := func(context.Context, string, v1.Hash, v1.Platform) (v1.Image, error) { return docker, nil }
	img := build(t, parse(t, onBase), Options{ProjectRoot: root, Epoch: testEpoch, BaseFetcher: fetch})
	m, _ := img.Manifest()
	if m.MediaType != types.DockerManifestSchema2 || m.Layers[1].MediaType != types.DockerLayer {
		t.Errorf("manifest %s with a %s layer; want Docker throughout", m.MediaType, m.Layers[1].MediaType)
	}
}

type memLayerAs struct {
	v1.Layer
	mt types.MediaType
}

func (l *memLayerAs) MediaType() (types.MediaType, error) { return l.mt, nil }

func mustDiffIDs(t *testing.T, ls []v1.Layer) []v1.Hash {
	var out []v1.Hash
	for _, l := range ls {
		h, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

func TestBuildErrors(t *testing.T) {
	root, bins := project(t)
	if err := os.Mkdir(filepath.Join(root, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	layer := func(files string) string {
		return "name: x\nversion: '1'\nbase: scratch\nlayers:\n  - files:\n" + files
	}
	arm := testBase(t, "linux/arm64")
	for _, tc := range []struct {
		name, def string
		opts      Options
		want      []string
	}{
		{"missing binary", layer("      - {src: 'build:solution', dst: /bin/solution}\n"), Options{Binaries: bins},
			[]string{"images/tools/image.yaml:6:", `no binary was built for CLI "solution"`}},
		{"no binaries", layer("      - {src: 'build:*', dst: /bin/}\n"), Options{},
			[]string{"images/tools/image.yaml:6:", "no CLI binaries"}},
		{"missing file", layer("      - {src: conf/missing.conf, dst: /etc/x}\n"), Options{},
			[]string{"images/tools/image.yaml:6:", "missing.conf", "no such file"}},
		{"directory src", layer("      - {src: adir, dst: /etc/x}\n"), Options{},
			[]string{"images/tools/image.yaml:6:", "not a regular file"}},
		{"expanded collision", layer("      - {src: 'build:*', dst: /bin/}\n      - {src: conf/tools.conf, dst: /bin/mkiso}\n"), Options{Binaries: bins},
			[]string{"images/tools/image.yaml:7:", "/bin/mkiso is already written by line 6"}},
		{"product version", "name: x\nversion: product\nbase: scratch\nlayers:\n  - dirs: [/x]\n", Options{ProductVersion: "not a tag"},
			[]string{"images/tools/image.yaml", "not a valid image tag"}},
		{"no fetcher", onBase, Options{},
			[]string{"images/tools/image.yaml:3:", "no base fetcher"}},
		{"fetch fails", onBase, Options{BaseFetcher: func(context.Context, string, v1.Hash, v1.Platform) (v1.Image, error) {
			return nil, errors.New("registry down")
		}}, []string{"images/tools/image.yaml:3:", "fetching base registry.example.com/base@sha256:0000", "registry down"}},
		{"wrong platform", onBase, Options{BaseFetcher: func(context.Context, string, v1.Hash, v1.Platform) (v1.Image, error) {
			return arm, nil
		}}, []string{"images/tools/image.yaml:3:", "is linux/arm64, but the image is built for linux/amd64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.ProjectRoot, tc.opts.Epoch = root, testEpoch
			_, err := Build(context.Background(), parse(t, tc.def), tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, parse(t, testDef), Options{ProjectRoot: root, ProductVersion: "1", Binaries: bins}); !errors.Is(err, context.Canceled) {
		t.Errorf("Build with a cancelled context: %v", err)
	}
}
