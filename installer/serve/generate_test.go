package serve

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func genOptions() Options {
	return Options{Listen: "127.0.0.1:8080", Endpoint: "10.0.0.1:8080", User: "nobody nogroup", Nginx: "/usr/sbin/nginx"}
}

// TestGenerate: the registry constants appear once for all archives, the
// output does not depend on the archives' order, the .repo and hosts.toml
// files carry the layout of the Salt states, and two archives with images
// of one upstream registry are both listed as its mirrors.
func TestGenerate(t *testing.T) {
	root := testRoot(t)
	mk, sol := twoArchives(t, root)
	mk2 := buildArchive(t, root, "metalk8s", "2.1.0", KindMetalK8s, []fixtureImage{
		{name: "calico-node", tag: "v3.9.0", source: "quay.mirror.invalid/calico/node"},
	}, 512)
	tx := change.New(root, true)
	f, err := Generate(tx, archivesOf(mk, sol, mk2), genOptions())
	if err != nil {
		t.Fatal(err)
	}
	f2, err := Generate(tx, archivesOf(mk2, sol, mk), genOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Server, f2.Server) || !bytes.Equal(f.Main, f2.Main) || !bytes.Equal(f.Unit, f2.Unit) {
		t.Fatal("the config depends on the archives' order")
	}
	for _, s := range []string{"location = /v2/ {", "location ^~ /v2/ {"} {
		if n := bytes.Count(f.Server, []byte(s)); n != 1 {
			t.Errorf("%q %d times in the server block, want once", s, n)
		}
	}
	for _, s := range []string{
		"location ^~ /metalk8s-2.0.0/ {\n        alias " + root + "/srv/scality/metalk8s-2.0.0/packages/redhat/;",
		"location ^~ /v2/example-solution-1.0.0/library/ui/ {",
		"alias " + root + "/srv/scality/example-solution-1.0.0/images/library/ui/1.0.0/manifest.json;",
		`rewrite "^/mirrors/metalk8s-2[.]1[.]0/quay[.]mirror[.]invalid/calico/node/(.*)$" /v2/metalk8s-2.1.0/calico-node/$1 last;`,
	} {
		if !bytes.Contains(f.Server, []byte(s)) {
			t.Errorf("server block lacks %q", s)
		}
	}
	if bytes.Contains(f.Server, []byte("{{")) {
		t.Error("a placeholder is left in the server block")
	}
	repo := string(f.Repos["/etc/yum.repos.d/metalk8s-metalk8s-2.0.0-metalk8s-epel.repo"])
	for _, s := range []string{"baseurl=http://10.0.0.1:8080/metalk8s-2.0.0/metalk8s-epel/\n", "gpgcheck=1\n",
		"gpgkey=http://10.0.0.1:8080/metalk8s-2.0.0/RPM-GPG-KEY-metalk8s-metalk8s-epel_1\n"} {
		if !strings.Contains(repo, s) {
			t.Errorf("repo file lacks %q:\n%s", s, repo)
		}
	}
	if len(f.Repos) != 2 {
		t.Errorf("%d repo files, want 2 (one per MetalK8s version): %v", len(f.Repos), f.Repos)
	}
	hosts := string(f.Hosts["/etc/containerd/certs.d/quay.mirror.invalid/hosts.toml"])
	want := `server = "https://quay.mirror.invalid"

[host."http://10.0.0.1:8080/mirrors/metalk8s-2.0.0/quay.mirror.invalid"]
  capabilities = ["pull", "resolve"]
  override_path = true

[host."http://10.0.0.1:8080/mirrors/metalk8s-2.1.0/quay.mirror.invalid"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	if !strings.HasSuffix(hosts, want) {
		t.Errorf("hosts.toml:\n%s\nwant it to end with\n%s", hosts, want)
	}
	if len(f.Hosts) != 2 {
		t.Errorf("%d hosts.toml files, want 2", len(f.Hosts))
	}
	if !bytes.Contains(f.Unit, []byte("RequiresMountsFor="+root+"/srv/scality/example-solution-1.0.0 "+root+"/srv/scality/metalk8s-2.0.0 ")) {
		t.Errorf("unit does not require the mounts:\n%s", f.Unit)
	}
	if !bytes.Contains(f.Main, []byte("user nobody nogroup;\n")) {
		t.Errorf("main config:\n%s", f.Main)
	}
}

// TestGenerateRefuses: every outside value that would reach a config is
// checked, and the error names the archive and what is wrong.
func TestGenerateRefuses(t *testing.T) {
	root := testRoot(t)
	mk, sol := twoArchives(t, root)
	copyTree := func(a *fixtureArchive, edit func(dir string)) *fixtureArchive {
		c := *a
		dir := t.TempDir()
		if out, err := exec.Command("cp", "-a", a.dir+"/.", dir).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		edit(dir)
		c.FS = os.DirFS(dir)
		return &c
	}
	appendTo := func(name, text string) func(string) {
		return func(dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, name))
			os.WriteFile(filepath.Join(dir, name), append(data, text...), 0o644)
		}
	}
	mod := func(a *fixtureArchive, f func(*Archive)) *fixtureArchive { c := *a; f(&c.Archive); return &c }
	cases := []struct {
		name string
		a    *fixtureArchive
		opts func(*Options)
		want string
	}{
		{"injected location", copyTree(sol, appendTo(RegistryTemplate, "location / { alias /; }\n")), nil, "example-solution-1.0.0: registry-config.inc.j2 is not the template"},
		{"jinja statement", copyTree(sol, appendTo(RegistryTemplate, "{% include '/etc/shadow' %}\n")), nil, "is not the template"},
		{"metalk8s template without constants", copyTree(mk, func(dir string) {
			b, _ := os.ReadFile(filepath.Join(sol.dir, RegistryTemplate))
			os.WriteFile(filepath.Join(dir, RegistryTemplate), b, 0o644)
		}), nil, "metalk8s-2.0.0: registry-config.inc.j2 is not the template"},
		{"missing template", copyTree(sol, func(dir string) { os.Remove(filepath.Join(dir, RegistryTemplate)) }), nil, "registry-config.inc.j2"},
		{"versions.json image not shipped", copyTree(mk, func(dir string) {
			p := filepath.Join(dir, VersionsFile)
			b, _ := os.ReadFile(p)
			ghost := `"images": {"ghost": {"name": "ghost", "version": "1.0", "digest": "sha256:` + strings.Repeat("0", 64) + `", "source": "quay.mirror.invalid/ghost"},`
			os.WriteFile(p, bytes.Replace(b, []byte(`"images": {`), []byte(ghost), 1), 0o644)
		}), nil, "metalk8s-2.0.0: salt/metalk8s/versions.json lists image ghost:1.0 (from quay.mirror.invalid/ghost), which images/ does not hold"},
		{"versions.json bad source", copyTree(mk, func(dir string) {
			p := filepath.Join(dir, VersionsFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"source": "k8s.mirror.invalid/coredns"`), []byte(`"source": "k8s.mirror.invalid/coredns;\n}"`), 1), 0o644)
		}), nil, "metalk8s-2.0.0: salt/metalk8s/versions.json: images.coredns.source"},
		{"mount path with a space", mod(sol, func(a *Archive) { a.MountPath = "/srv/scality/a b" }), nil, "segment \"a b\""},
		{"mount path with ;", mod(sol, func(a *Archive) { a.MountPath = "/srv/x;root" }), nil, "mount path"},
		{"relative mount path", mod(sol, func(a *Archive) { a.MountPath = "srv/scality/x" }), nil, "not an absolute, clean path"},
		{"unclean mount path", mod(sol, func(a *Archive) { a.MountPath = "/srv/scality/../x" }), nil, "not an absolute, clean path"},
		{"upper-case name", mod(sol, func(a *Archive) { a.Name = "Example" }), nil, "archive name \"Example\""},
		{"name with a slash", mod(sol, func(a *Archive) { a.Name = "a/b" }), nil, "archive name"},
		{"version with a brace", mod(sol, func(a *Archive) { a.Version = "1.0{" }), nil, "version \"1.0{\""},
		{"bad kind", mod(sol, func(a *Archive) { a.Kind = "other" }), nil, "kind \"other\""},
		{"root workers", sol, func(o *Options) { o.User = "root" }, "must not run as root"},
		{"user with ;", sol, func(o *Options) { o.User = "nobody;x" }, "not a user or group name"},
		{"listen without port", sol, func(o *Options) { o.Listen = "127.0.0.1" }, "listen address"},
		{"endpoint with a path", sol, func(o *Options) { o.Endpoint = "a/b:80" }, "endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := genOptions()
			if c.opts != nil {
				c.opts(&o)
			}
			_, err := Generate(change.New(root, true), archivesOf(c.a), o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
		})
	}
	// The same archive twice.
	if _, err := Generate(change.New(root, true), archivesOf(sol, sol), genOptions()); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("the same archive twice: %v", err)
	}
	// A root nginx would misread.
	if _, err := Generate(change.New(root+"/a b", true), archivesOf(sol), genOptions()); err == nil {
		t.Fatal("a root holding a space was accepted")
	}
}

// TestUnitVerifies runs systemd-analyze verify on the generated unit.
func TestUnitVerifies(t *testing.T) {
	sa := testenv.Need(t, "systemd-analyze")[0]
	nginx := testenv.Need(t, "nginx")[0]
	root := testRoot(t)
	_, sol := twoArchives(t, root)
	o := genOptions()
	o.Nginx = nginx
	f, err := Generate(change.New("/", true), []Archive{{Name: sol.Name, Version: sol.Version, Kind: sol.Kind, MountPath: sol.dir, FS: sol.FS}}, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.Base(UnitFile))
	if err := os.WriteFile(p, f.Unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
	// verify also loads the units this one names (network-online.target,
	// the mounts); complaints about those are the test machine's, not
	// the unit's, so only lines naming this unit count.
	var own []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, filepath.Base(UnitFile)) {
			own = append(own, l)
		}
	}
	if len(own) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, f.Unit)
	}
	t.Logf("systemd-analyze verify: %v %s", err, out)
}
