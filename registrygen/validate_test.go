package registrygen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "library/busybox", "a.b", "a_b", "a__b", "a-b", "a---b", "0", "a/b/c/d", "metalk8s-2.0.0/coredns", strings.Repeat("a", 255)}
	bad := []string{"", "A", "a/", "/a", "a//b", "a..b", "a._b", ".a", "a.", "-a", "a-", "_a", "a___b", "a b", "a;b", `a"b`, "a'b", "a{b", "a}b",
		"a$b", "a\nb", "a\tb", "..", "a/../b", "a/./b", "a:b", "a@b", "a#b", "é", strings.Repeat("a", 256)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q): %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) accepted", n)
		}
	}
}

func TestValidateTagAndDigest(t *testing.T) {
	for _, tag := range []string{"1.0", "latest", "_x", "A-b_c.D", "v1.2.3-rc.1", strings.Repeat("a", 128)} {
		if err := ValidateTag(tag); err != nil {
			t.Errorf("ValidateTag(%q): %v", tag, err)
		}
	}
	for _, tag := range []string{"", ".x", "-x", "0..", "a..b", "a:b", "a/b", "a b", "a;", "a$", "a{", "a\n", strings.Repeat("a", 129), "sha256:" + strings.Repeat("a", 64)} {
		if err := ValidateTag(tag); err == nil {
			t.Errorf("ValidateTag(%q) accepted", tag)
		}
	}
	if err := ValidateDigest(zeroDigest); err != nil {
		t.Error(err)
	}
	for _, d := range []string{"", "sha256:", zeroDigest + "0", zeroDigest[:70], "sha512:" + strings.Repeat("0", 128), "SHA256:" + strings.Repeat("0", 64), "sha256:" + strings.Repeat("A", 64), zeroDigest + "\n"} {
		if err := ValidateDigest(d); err == nil {
			t.Errorf("ValidateDigest(%q) accepted", d)
		}
	}
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "a": "a/", "/a/b/": "a/b/", "{{ repository }}": "{{ repository }}/",
		"{{repository}}": "{{repository}}/", "sol-{{ version }}/x": "sol-{{ version }}/x/",
	} {
		got, err := NormalizePrefix(in)
		if err != nil || got != want {
			t.Errorf("NormalizePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"A", "a b", "a;b", `a"`, "$x", "{% if x %}", "{# c #}", "{{ x | y }}", "{{ x }", "{ x }", "{{ x.y }}", "a//b", "a/../b", "a\nb", "{{ x }};"} {
		if got, err := NormalizePrefix(in); err == nil {
			t.Errorf("NormalizePrefix(%q) accepted: %q", in, got)
		}
	}
}

func TestNormalizeServerRoot(t *testing.T) {
	for in, want := range map[string]string{
		"/": "/", "/srv/images": "/srv/images", "/srv/images/": "/srv/images", "$root": "$root", "$root/x/y": "$root/x/y",
		"{{ registry_root }}": "{{ registry_root }}", "{{ registry_root }}/images": "{{ registry_root }}/images",
		"/srv/metalk8s-2.0.0/a_b+c@d=e,f:g~h": "/srv/metalk8s-2.0.0/a_b+c@d=e,f:g~h",
	} {
		got, err := NormalizeServerRoot(in)
		if err != nil || got != want {
			t.Errorf("NormalizeServerRoot(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "srv", "./srv", "/srv/../etc", "/srv/./x", "/srv//x", "/srv/a..b", "/a b", "/a\tb", "/a\nb", "/a;b", `/a"b`, "/a'b",
		"/a{b", "/a}b", "/a$b", "/a#b", "$", "${root}", "$1x/y", "$root;", "$root x", "{{ root }}x", "{{ root }", "x{{ root }}", "{% x %}", "/a\\b", "/é"} {
		if got, err := NormalizeServerRoot(in); err == nil {
			t.Errorf("NormalizeServerRoot(%q) accepted: %q", in, got)
		}
	}
}

// writeImage writes a minimal valid Docker v2s2 dir: image at root/rel.
func writeImage(t testing.TB, root, rel string) string {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	manifest := `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":37,"digest":"` + sha(config) + `"},"layers":[]}`
	for name, data := range map[string][]byte{"manifest.json": []byte(manifest), "version": []byte("Directory Transport Version: 1.1\n"), hexOf(sha(config)): config} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRejectsBadTrees: whatever the directory names and files hold,
// Generate refuses them with an error naming the offending path and emits
// nothing.
func TestRejectsBadTrees(t *testing.T) {
	for _, c := range []struct {
		name   string
		make   func(root string) string // returns the path the error must name
		reason string
	}{
		{"space in name", func(r string) string { return writeImage(t, r, "a b/1.0") }, "does not match"},
		{"semicolon", func(r string) string { return writeImage(t, r, "a;b/1.0") }, "does not match"},
		{"quote", func(r string) string { return writeImage(t, r, `a"b/1.0`) }, "does not match"},
		{"single quote", func(r string) string { return writeImage(t, r, "a'b/1.0") }, "does not match"},
		{"brace", func(r string) string { return writeImage(t, r, "a{b}/1.0") }, "does not match"},
		{"dollar", func(r string) string { return writeImage(t, r, "a$b/1.0") }, "does not match"},
		{"newline", func(r string) string { return writeImage(t, r, "a\nb/1.0") }, "does not match"},
		{"dot dot", func(r string) string { return writeImage(t, r, "a..b/1.0") }, "does not match"},
		{"upper case", func(r string) string { return writeImage(t, r, "Nginx/1.0") }, "does not match"},
		{"bad tag", func(r string) string { return writeImage(t, r, "a/-1.0") }, "tag"},
		{"tag with semicolon", func(r string) string { return writeImage(t, r, "a/1;0") }, "tag"},
		{"tag with brace", func(r string) string { return writeImage(t, r, "a/{{x}}") }, "tag"},
		{"no name", func(r string) string { return writeImage(t, r, "1.0") }, "no name"},
		{"root is an image", func(r string) string { return writeImage(t, r, "") }, "no name"},
		{"manifest not JSON", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			os.WriteFile(filepath.Join(d, "manifest.json"), []byte("{"), 0o644)
			return filepath.Join(d, "manifest.json")
		}, "not a JSON object"},
		{"unknown media type", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			os.WriteFile(filepath.Join(d, "manifest.json"), []byte(`{"schemaVersion":2,"mediaType":"text/html; x=\"';","config":{}}`), 0o644)
			return filepath.Join(d, "manifest.json")
		}, "not served"},
		{"schema 1", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			os.WriteFile(filepath.Join(d, "manifest.json"), []byte(`{"schemaVersion":1,"name":"a","tag":"1.0","fsLayers":[]}`), 0o644)
			return filepath.Join(d, "manifest.json")
		}, "schemaVersion"},
		// dirlayout names the missing blob's path, and the manifest
		// listing it in the message.
		{"missing blob", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			entries, _ := os.ReadDir(d)
			var blob string
			for _, e := range entries {
				if len(e.Name()) == 64 {
					blob = filepath.Join(d, e.Name())
					os.Remove(blob)
				}
			}
			return blob
		}, "not in the directory"},
		{"child digest mismatch", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			p := filepath.Join(d, strings.Repeat("ab", 32)+".manifest.json")
			os.WriteFile(p, []byte(`{}`), 0o644)
			return p
		}, "content digest"},
		{"symlinked blob", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			p := filepath.Join(d, strings.Repeat("cd", 32))
			os.Symlink("/etc/passwd", p)
			return p
		}, "symbolic links"},
		{"bad version", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			os.WriteFile(filepath.Join(d, "version"), []byte("Directory Transport Version: 2\n"), 0o644)
			return filepath.Join(d, "version")
		}, "Directory Transport Version"},
		{"manifest without version", func(r string) string {
			d := writeImage(t, r, "a/1.0")
			os.Remove(filepath.Join(d, "version"))
			return d
		}, "only one of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeImage(t, root, "good/1.0")
			where := c.make(root)
			out, err := Generate(Config{Roots: []Root{{Dir: root, ServerRoot: "/srv"}}})
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			if out != nil {
				t.Errorf("emitted output with the error")
			}
			if !strings.Contains(err.Error(), where) || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("error %q does not name %q with %q", err, where, c.reason)
			}
			if _, err := NewHandler(Root{Dir: root}); err == nil {
				t.Errorf("NewHandler accepted the tree")
			}
		})
	}
}

func TestRejectsBadRoots(t *testing.T) {
	root := t.TempDir()
	writeImage(t, root, "a/1.0")
	for _, r := range []Root{
		{Dir: root, NamePrefix: "A"},
		{Dir: root, NamePrefix: "a;b"},
		{Dir: root, NamePrefix: "{% x %}"},
		{Dir: root, ServerRoot: "relative"},
		{Dir: root, ServerRoot: "/srv/../etc"},
		{Dir: root, ServerRoot: "/srv;x"},
		{Dir: root, ServerRoot: "/srv x"},
		{Dir: root, NamePrefix: strings.Repeat("a", 254)}, // a/ + a > 255
		{Dir: filepath.Join(root, "missing")},
	} {
		if out, err := Generate(Config{Roots: []Root{r}}); err == nil {
			t.Errorf("%+v accepted:\n%.300s", r, out)
		} else if !strings.Contains(err.Error(), root) {
			t.Errorf("%+v: error %q does not name the root", r, err)
		}
	}
	// The default server root is the root's path, which must be usable.
	spaced := filepath.Join(t.TempDir(), "with space")
	writeImage(t, spaced, "a/1.0")
	if _, err := Generate(Config{Roots: []Root{{Dir: spaced}}}); err == nil || !strings.Contains(err.Error(), "server root") {
		t.Errorf("root path with a space: %v", err)
	}
	if _, err := Generate(Config{Roots: []Root{{Dir: spaced, ServerRoot: "/srv/x"}}}); err != nil {
		t.Errorf("with a server root: %v", err)
	}
	if _, err := NewHandler(Root{Dir: spaced}); err != nil {
		t.Errorf("NewHandler needs no server root: %v", err)
	}
	if _, err := NewHandler(Root{Dir: root, NamePrefix: "{{ repository }}"}); err == nil {
		t.Errorf("NewHandler accepted a template prefix")
	}
}

// TestScanSkipsAndDedups: hidden directories and non-image files are
// ignored, and identical blobs across tags are served once.
func TestScanSkipsAndDedups(t *testing.T) {
	root := t.TempDir()
	writeImage(t, root, "a/1.0")
	writeImage(t, root, "a/2.0")
	writeImage(t, root, ".tmp-a-123/1.0")
	writeImage(t, root, "b/.hidden/1.0")
	os.WriteFile(filepath.Join(root, "a", "1.0", "signature-1"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "README"), []byte("x"), 0o644)
	tree, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Repositories) != 1 || tree.Repositories[0].Name != "a" {
		t.Fatalf("repositories: %+v", tree.Repositories)
	}
	r := tree.Repositories[0]
	if len(r.Tags) != 2 || len(r.Manifests) != 1 || len(r.Blobs) != 1 || !strings.HasPrefix(r.Blobs[0].Path, "a/1.0/") {
		t.Fatalf("repository a: %+v", r)
	}
}

// TestRejectsShadowingNames: a name ending in an API word under another
// name would answer that name's requests.
func TestRejectsShadowingNames(t *testing.T) {
	for _, ep := range []string{"manifests", "blobs", "tags", "referrers"} {
		root := t.TempDir()
		writeImage(t, root, "a/1.0")
		writeImage(t, root, "a/"+ep+"/1.0")
		if _, err := Generate(Config{Roots: []Root{{Dir: root}}}); err == nil || !strings.Contains(err.Error(), "shadow") || !strings.Contains(err.Error(), root) {
			t.Errorf("a and a/%s: %v", ep, err)
		}
	}
	root := t.TempDir()
	writeImage(t, root, "a/1.0")
	writeImage(t, root, "a/manifests-x/1.0")
	writeImage(t, root, "a/manifests/x/1.0")
	if _, err := Generate(Config{Roots: []Root{{Dir: root}}}); err != nil {
		t.Errorf("names that do not shadow: %v", err)
	}
}
