package installer_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/config"
	"github.com/metalk8s/buildchain/installer/installertest"
	"github.com/metalk8s/buildchain/internal/cli"
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
