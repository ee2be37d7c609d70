package installer_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/config"
	"github.com/metalk8s/buildchain/installer/installertest"
	"github.com/metalk8s/buildchain/installer/serve"
	"github.com/metalk8s/buildchain/internal/cli"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

// withReal wires the landed pieces of installer.Real over the stand-ins.
func withReal(env installer.Env) (installer.Pieces, error) {
	p, err := installertest.Wire(env)
	if err != nil {
		return p, err
	}
	real, err := installer.Real(env)
	if err != nil {
		return p, err
	}
	if real.Config != nil {
		p.Config = real.Config
	}
	return p, nil
}

func runReal(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := installer.Run(context.Background(), args, &stdout, &stderr, withReal)
	var msg bytes.Buffer
	code := cli.ExitCode(installer.Name, err, &msg)
	return result{err, code, stdout.String(), stderr.String() + msg.String()}
}

const bootstrapYAML = `apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks:
  controlPlane: 10.0.0.0/16
  workloadPlane: 10.0.0.0/16
ca:
  minion: bootstrap
apiServer:
  host: 10.0.0.1
products:
  metalk8s:
    - /isos/metalk8s
`

func TestRealConfig(t *testing.T) {
	root := t.TempDir()
	if r := runReal(t, "--root", root, "bootstrap"); r.code != 1 || !strings.Contains(r.stderr, "/etc/metalk8s/bootstrap.yaml does not exist") {
		t.Fatalf("bootstrap without bootstrap.yaml: %d %s", r.code, r.stderr)
	}
	os.MkdirAll(filepath.Join(root, "etc/metalk8s"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.yaml"), []byte(strings.Replace(bootstrapYAML, "10.0.0.1", "10.1.0.1", 1)), 0o644)
	if r := runReal(t, "--root", root, "bootstrap"); r.code != 1 || !strings.Contains(r.stderr, "bootstrap.yaml:9: apiServer.host") {
		t.Fatalf("bootstrap with an invalid bootstrap.yaml: %d %s", r.code, r.stderr)
	}
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.yaml"), []byte(bootstrapYAML), 0o644)
	if err := installertest.WriteArchive(filepath.Join(root, "isos/metalk8s"), "MetalK8s", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if r := runReal(t, "--root", root, "bootstrap"); r.code != 0 || !strings.Contains(r.stdout, "fake-metalk8s-2.0.0.mount") {
		t.Fatalf("bootstrap: %d %v\n%s", r.code, r.err, r.stdout)
	}

	// solutions.yaml: both versions listed, the last added active; a
	// comment added by hand stays.
	v1 := archive(t, "example-solution", "1.0.0")
	v2 := archive(t, "example-solution", "1.1.0")
	for _, iso := range []string{v1, v2} {
		if r := runReal(t, "--root", root, "solution", "add", iso); r.code != 0 {
			t.Fatalf("solution add: %v", r.err)
		}
	}
	sy := filepath.Join(root, config.SolutionsPath)
	s, err := config.LoadSolutions(sy)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Archives, ",") != v1+","+v2 || s.Active["example-solution"] != "1.1.0" {
		t.Fatalf("solutions.yaml: %v %v", s.Archives, s.Active)
	}
	data, _ := os.ReadFile(sy)
	os.WriteFile(sy, append([]byte("# kept by hand\n"), data...), 0o644)
	if r := runReal(t, "--root", root, "solution", "add", v2); r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("adding the same Solution again: %d %s", r.code, r.stdout)
	}
	if r := runReal(t, "--root", root, "solution", "remove", v2); r.code != 0 {
		t.Fatal(r.err)
	}
	if s, _ = config.LoadSolutions(sy); strings.Join(s.Archives, ",") != v1 || len(s.Active) != 0 {
		t.Fatalf("after removing the active version: %v %v", s.Archives, s.Active)
	}
	if r := runReal(t, "--root", root, "solution", "remove", v1); r.code != 0 {
		t.Fatal(r.err)
	}
	data, _ = os.ReadFile(sy)
	if !strings.HasPrefix(string(data), "# kept by hand\n") || !strings.Contains(string(data), "archives: []") {
		t.Fatalf("solutions.yaml after removing both:\n%s", data)
	}
	// An invalid solutions.yaml fails the add, which changes nothing.
	os.WriteFile(sy, []byte("apiVersion: x\n"), 0o644)
	before := tree(t, root, "var/log/metalk8s/installer.log")
	if r := runReal(t, "--root", root, "solution", "add", v1); r.code != 1 || !strings.Contains(r.stderr, "solutions.yaml:1") {
		t.Fatalf("invalid solutions.yaml: %d %s", r.code, r.stderr)
	}
	if d := diff(before, tree(t, root, "var/log/metalk8s/installer.log")); len(d) > 0 {
		t.Fatalf("failed add left %v", d)
	}
}

// solutionFixture lays a Solution archive out at its mount point under
// root (the stand-in mounter leaves it there): one image in the skopeo
// dir: layout and the registry template registrygen generates.
func solutionFixture(t *testing.T, root string) (dir, manifestPath string) {
	t.Helper()
	dir = filepath.Join(root, "srv/scality/example-solution-1.0.0")
	if err := installertest.WriteArchive(dir, "example-solution", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cache := oci.Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	res, err := oci.StoreImage(oci.Image{Name: "example-solution-operator", Version: "1.0.0"}, img, cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := oci.WriteDir(filepath.Join(dir, "images", "example-solution-operator", "1.0.0"), res, cache); err != nil {
		t.Fatal(err)
	}
	if err := solution.WriteRegistryConfig(dir, registrygen.OmitConstants); err != nil {
		t.Fatal(err)
	}
	return dir, "/v2/example-solution-1.0.0/example-solution-operator/manifests/1.0.0"
}

func withRealServer(env installer.Env) (installer.Pieces, error) {
	p, err := withReal(env)
	if err != nil {
		return p, err
	}
	real, _ := installer.Real(env)
	p.Server = real.Server
	return p, nil
}

// The real installer/serve behind the commands: nginx (unprivileged
// workers) serves the Solution's registry after solution add, a second
// add changes nothing, remove makes it answer 404, a failing run keeps
// the previous configuration serving.
func TestRealServe(t *testing.T) {
	nginx := testenv.Need(t, "nginx")[0]
	if nginx != "/usr/sbin/nginx" {
		t.Skipf("nginx is %s; the installer runs /usr/sbin/nginx", nginx)
	}
	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	t.Cleanup(func() { serve.Stop(change.New(root, false)) })
	dir, manifest := solutionFixture(t, root)
	// nginx's workers are nobody: the fixture, made under the test's
	// umask, is opened to others as an ISO's Rock Ridge modes are.
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, fi.Mode().Perm()|0o555)
		} else if err == nil {
			os.Chmod(p, fi.Mode().Perm()|0o444)
		}
		return nil
	})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	run := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		err := installer.Run(context.Background(), append([]string{"--root", root, "--listen", listen}, args...), &stdout, &stderr, withRealServer)
		var msg bytes.Buffer
		return result{err, cli.ExitCode(installer.Name, err, &msg), stdout.String(), stderr.String() + msg.String()}
	}
	get := func() int {
		resp, err := http.Get("http://" + listen + manifest)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if r := run("solution", "add", dir); r.code != 0 {
		t.Fatalf("solution add: %v\n%s", r.err, r.stderr)
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET %s after add: %d", manifest, code)
	}
	if r := run("solution", "add", dir); r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("second add: %d %v\n%s", r.code, r.err, r.stdout)
	}
	// A failing run (here: the deploy) rolls back, and the config that
	// served before serves still.
	bad := filepath.Join(root, "srv/scality/other-solution-1.0.0")
	installertest.WriteArchive(bad, "other-solution", "1.0.0", "deploy")
	solution.WriteRegistryConfig(bad, registrygen.OmitConstants)
	if r := run("solution", "add", bad); r.code != 1 || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("failing add: %d\n%s", r.code, r.stderr)
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET after a failed run: %d", code)
	}
	if r := run("solution", "remove", dir); r.code != 0 {
		t.Fatalf("solution remove: %v\n%s", r.err, r.stderr)
	}
	// A reload is asynchronous (old workers finish, new ones start): a
	// wait with a generous bound, not a timed assertion.
	code := 0
	for i := 0; i < 300 && code != http.StatusNotFound; i++ {
		if code = get(); code != http.StatusNotFound {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code != http.StatusNotFound {
		t.Fatalf("GET %s after remove: %d, want 404", manifest, code)
	}
	if r := run("solution", "remove", dir); r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("second remove: %d %v\n%s", r.code, r.err, r.stdout)
	}
}
