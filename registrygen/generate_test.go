package registrygen

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// pullAll pulls and verifies every fixture image from host under prefix
// with go-containerregistry.
func pullAll(t testing.TB, tree *fixtureTree, host, prefix string) {
	t.Helper()
	for _, im := range tree.images {
		ref, err := name.ParseReference(host+"/"+prefix+im.ref(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(ref)
		if err != nil {
			t.Errorf("remote.Get %s: %v", ref, err)
			continue
		}
		if desc.Digest.String() != im.digest {
			t.Errorf("%s: digest %s, want %s", ref, desc.Digest, im.digest)
		}
		if len(im.children) > 0 {
			idx, err := desc.ImageIndex()
			if err == nil {
				err = validate.Index(idx, validate.Fast)
			}
			if err != nil {
				t.Errorf("%s: %v", ref, err)
			}
			continue
		}
		img, err := desc.Image()
		if err == nil {
			err = validate.Image(img, validate.Fast)
		}
		if err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	tree := testTree(t)
	cfg := Config{Roots: []Root{{Dir: tree.root, NamePrefix: "p", ServerRoot: "/srv/images"}}}
	a, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A copy elsewhere, with other mtimes and directory order, served from
	// the same server root, gives the same bytes.
	cp := copyTree(t, tree.root)
	if err := filepath.Walk(cp, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, time.Unix(1, 0), time.Unix(1, 0))
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cfg.Roots[0].Dir = []string{tree.root, cp}[i%2]
		b, err := Generate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("run %d differs from the first", i)
		}
	}
}

// TestNginxAcceptsEveryMode runs nginx -t on every shape of output.
func TestNginxAcceptsEveryMode(t *testing.T) {
	tree := testTree(t)
	for _, c := range []struct {
		name string
		cfg  Config
		pre  string
	}{
		{"default", Config{Roots: []Root{{Dir: tree.root}}}, ""},
		{"prefix", Config{Roots: []Root{{Dir: tree.root, NamePrefix: "/a/b.c/"}}}, ""},
		{"only-constants", Config{Constants: OnlyConstants}, ""},
		{"omit-constants", Config{Roots: []Root{{Dir: tree.root}}, Constants: OmitConstants}, ""},
		{"variable-root", Config{Roots: []Root{{Dir: tree.root, ServerRoot: "$images/x"}}}, "set $images /srv;\n"},
		{"root-slash", Config{Roots: []Root{{Dir: tree.root, ServerRoot: "/"}}}, ""},
		{"empty-root", Config{Roots: []Root{{Dir: t.TempDir()}}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := Generate(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := nginxCheck(t, c.pre+string(conf)); err != nil {
				t.Fatalf("%v\n%s", err, conf)
			}
		})
	}
}

// TestServerRootVariable serves through an nginx variable server root.
func TestServerRootVariable(t *testing.T) {
	tree := testTree(t)
	conf, err := Generate(Config{Roots: []Root{{Dir: tree.root, NamePrefix: "v", ServerRoot: "$registry_root"}}})
	if err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNginx(t, testenv.NginxConfig{Server: "set $registry_root " + tree.root + ";\n" + string(conf)})
	pullAll(t, tree, strings.TrimPrefix(n.URL, "http://"), "v/")
}

// jinjaRender renders a template with the real Jinja2, as Salt does.
func jinjaRender(t testing.TB, tmpl string, vars map[string]string) string {
	t.Helper()
	// Debian's python3-jinja2 belongs to the system interpreter, which a
	// python3 earlier on PATH (pyenv, a venv) does not see.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = testenv.Need(t, "python3")[0]
	}
	if err := exec.Command(py, "-c", "import jinja2").Run(); err != nil {
		if testenv.Required() {
			t.Fatal("python3-jinja2 is not installed")
		}
		t.Skip("python3-jinja2 is not installed")
	}
	args := []string{"-c", `import sys, jinja2
env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
vars = dict(a.split("=", 1) for a in sys.argv[1:])
sys.stdout.write(env.from_string(sys.stdin.read()).render(**vars))`}
	for k, v := range vars {
		args = append(args, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Stdin = strings.NewReader(tmpl)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jinja2 render: %v\n%s", err, stderr.Bytes())
	}
	return string(out)
}

// TestJinjaTemplate generates a Solution's registry-config.inc.j2 as docs
// 12.2.4 does, renders it with Jinja2 and serves it with nginx beside the
// constants, then pulls everything under the rendered prefix.
func TestJinjaTemplate(t *testing.T) {
	tree := testTree(t)
	tmpl, err := Generate(Config{
		Roots:     []Root{{Dir: tree.root, NamePrefix: "{{ repository }}", ServerRoot: "{{ registry_root }}"}},
		Constants: OmitConstants,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Template, the Solution tool's and validator's entry point, is that
	// configuration, read through io/fs.
	if viaFS, err := Template(os.DirFS(tree.root), ".", OmitConstants); err != nil || !bytes.Equal(viaFS, tmpl) {
		t.Fatalf("Template differs from Generate (err %v)", err)
	}
	// The template must be plain substitution: no other Jinja syntax.
	if i := bytes.IndexAny(tmpl, "%#"); i >= 0 && (bytes.Contains(tmpl, []byte("{%")) || bytes.Contains(tmpl, []byte("{#"))) {
		t.Fatalf("template holds Jinja statements or comments")
	}
	placeholders := regexp.MustCompile(`\{\{.*?\}\}`).FindAllString(string(tmpl), -1)
	for _, p := range placeholders {
		if p != "{{ repository }}" && p != "{{ registry_root }}" {
			t.Fatalf("unexpected placeholder %q", p)
		}
	}
	if len(placeholders) == 0 {
		t.Fatal("no placeholder in the template")
	}
	// The Solution's tree is mounted elsewhere than where it was built.
	mount := copyTree(t, tree.root)
	rendered := jinjaRender(t, string(tmpl), map[string]string{"repository": "example-solution-1.0.0", "registry_root": mount})
	constants, err := Generate(Config{Constants: OnlyConstants})
	if err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNginx(t, testenv.NginxConfig{Server: string(constants) + rendered})
	host := strings.TrimPrefix(n.URL, "http://")
	pullAll(t, tree, host, "example-solution-1.0.0/")
	// Not under the bare names any more.
	if r := do(t, "GET", n.URL+"/v2/library/busybox/tags/list"); r.status != 404 {
		t.Errorf("unprefixed name served: %d", r.status)
	}
	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		im := tree.byRef(t, "multi/app", "3.0")
		dst := filepath.Join(t.TempDir(), "copy")
		run(t, time.Minute, skopeo, "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
			"docker://"+host+"/example-solution-1.0.0/"+im.ref(), "dir:"+dst)
		if got := dirDigests(t, dst)["manifest.json"]; got != im.digest {
			t.Errorf("skopeo copy through the template: %s, want %s", got, im.digest)
		}
	}
}

// TestSideBySide serves two roots, each with its own prefix and server
// root, from one nginx server block: once as one Generate call (constants
// emitted once), once as MetalK8s assembles them (--only-constants plus
// one --omit-constants include per archive).
func TestSideBySide(t *testing.T) {
	tree := testTree(t)
	other := copyTree(t, tree.root)
	mountA, mountB := copyTree(t, tree.root), copyTree(t, tree.root)
	one, err := Generate(Config{Roots: []Root{
		{Dir: tree.root, NamePrefix: "a-1.0", ServerRoot: mountA},
		{Dir: other, NamePrefix: "b-2.0", ServerRoot: mountB},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(one), "location = /v2/ {"); c != 1 {
		t.Fatalf("constants emitted %d times", c)
	}
	consts, err := Generate(Config{Constants: OnlyConstants})
	if err != nil {
		t.Fatal(err)
	}
	incA, err := GenerateRoot(tree.root, "a-1.0", mountA, OmitConstants)
	if err != nil {
		t.Fatal(err)
	}
	incB, err := GenerateRoot(other, "b-2.0", mountB, OmitConstants)
	if err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string]string{"one": string(one), "includes": string(consts) + string(incA) + string(incB)} {
		t.Run(name, func(t *testing.T) {
			n := testenv.StartNginx(t, testenv.NginxConfig{Server: conf})
			host := strings.TrimPrefix(n.URL, "http://")
			pullAll(t, tree, host, "a-1.0/")
			pullAll(t, tree, host, "b-2.0/")
		})
	}
	// The same name from two roots is refused, naming both.
	_, err = Generate(Config{Roots: []Root{{Dir: tree.root, NamePrefix: "x"}, {Dir: other, NamePrefix: "x"}}})
	if err == nil || !strings.Contains(err.Error(), tree.root) || !strings.Contains(err.Error(), other) {
		t.Fatalf("duplicate names across roots: %v", err)
	}
}

// TestGenerateLarge: 500 images with 3 tags each give a config that nginx
// -t accepts. Speed is BenchmarkGenerateLarge's business: a test never
// asserts a duration.
func TestGenerateLarge(t *testing.T) {
	testenv.Short(t, "writes 1500 image directories")
	root := t.TempDir()
	writeSynthetic(t, root, 500, 3)
	conf, err := Generate(Config{Roots: []Root{{Dir: root}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nginxCheck(t, string(conf)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(conf), "location = /v2/group"); n < 500 {
		t.Errorf("%d manifest-list locations for 500 images", n)
	}
}

// BenchmarkGenerateLarge: scan and generate over 500 images with 3 tags
// each (go test -run '^$' -bench GenerateLarge ./registrygen/).
func BenchmarkGenerateLarge(b *testing.B) {
	root := b.TempDir()
	writeSynthetic(b, root, 500, 3)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Generate(Config{Roots: []Root{{Dir: root}}}); err != nil {
			b.Fatal(err)
		}
	}
}

// writeSynthetic writes n names with tags tags each, in the dir: layout,
// each image a config and two layers (one shared by all), blobs
// hard-linked across the tags of a name as the ISO build does.
func writeSynthetic(t testing.TB, root string, n, tags int) {
	t.Helper()
	shared := []byte("shared layer")
	for i := range n {
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%d}`, i))
		layer := []byte(fmt.Sprintf("layer %d", i))
		manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":%q},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q},{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q}]}`,
			MediaTypeDockerManifest, len(config), sha(config), len(layer), sha(layer), len(shared), sha(shared))
		var first string
		for j := range tags {
			dir := filepath.Join(root, "group"+fmt.Sprint(i%10), fmt.Sprintf("image-%03d", i), fmt.Sprintf("1.%d.0", j))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				"manifest.json":    []byte(manifest),
				"version":          []byte("Directory Transport Version: 1.1\n"),
				hexOf(sha(config)): config,
				hexOf(sha(layer)):  layer,
				hexOf(sha(shared)): shared,
			}
			for name, data := range files {
				p := filepath.Join(dir, name)
				if first != "" && len(name) == 64 {
					if err := os.Link(filepath.Join(first, name), p); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if first == "" {
				first = dir
			}
		}
	}
}

// TestTemplateFS: Template reads any io/fs file system (here one held in
// memory, as an ISO image's is read in place) and gives the bytes the
// directory path entry point gives; ScanFS names faults by their path in
// the file system and refuses a root that is a link.
func TestTemplateFS(t *testing.T) {
	tree := testTree(t)
	want, err := GenerateRoot(tree.root, RepositoryPlaceholder, RegistryRootPlaceholder, OmitConstants)
	if err != nil {
		t.Fatal(err)
	}
	mem := fstest.MapFS{}
	err = filepath.WalkDir(tree.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tree.root, p)
		data, err := os.ReadFile(p)
		mem[path.Join("archive/images", filepath.ToSlash(rel))] = &fstest.MapFile{Data: data, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []ConstantsMode{OmitConstants, WithConstants} {
		want, err := GenerateRoot(tree.root, RepositoryPlaceholder, RegistryRootPlaceholder, mode)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Template(mem, "archive/images", mode)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("mode %d: Template over an fs.FS differs from GenerateRoot", mode)
		}
	}
	if !bytes.Contains(want, []byte("/v2/"+RepositoryPlaceholder+"/library/busybox/manifests/1.36")) ||
		!bytes.Contains(want, []byte("alias "+RegistryRootPlaceholder+"/library/busybox/1.36/manifest.json;")) {
		t.Fatalf("the template does not use the placeholders:\n%s", want)
	}

	broken := fstest.MapFS{}
	for k, v := range mem {
		broken[k] = v
	}
	delete(broken, "archive/images/oci/app/2.0/version")
	_, err = Template(broken, "archive/images", OmitConstants)
	if err == nil || !strings.Contains(err.Error(), "archive/images/oci/app/2.0") {
		t.Errorf("a broken image: want an error naming archive/images/oci/app/2.0, got %v", err)
	}
	broken["link"] = &fstest.MapFile{Data: []byte("archive/images"), Mode: fs.ModeSymlink | 0o777}
	if _, err := Template(broken, "link", OmitConstants); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a link as the root: want refused, got %v", err)
	}
	if _, err := Template(mem, "../x", OmitConstants); err == nil {
		t.Error("an invalid path was accepted")
	}
}
