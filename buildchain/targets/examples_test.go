package targets

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/step"
)

// The real Node manifests render: every role of chapter 4.3.1, the
// version label filled in, the README left out.
func TestRenderExamplesReal(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	files, err := RenderExamples(filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(ExamplesDir)), "2.0.0-dev")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]bool{}
	for name, data := range files {
		if !strings.Contains(string(data), "metalk8s.scality.com/version: '2.0.0-dev'") {
			t.Errorf("%s: no version label", name)
		}
		for _, r := range []string{"bootstrap", "master", "etcd", "infra", "node"} {
			if strings.Contains(string(data), "node-role.kubernetes.io/"+r+": ''") {
				roles[r] = true
			}
		}
	}
	if _, ok := files["README.md"]; ok || len(files) != 4 || len(roles) != 5 {
		t.Fatalf("files %d, roles %v", len(files), roles)
	}
}

func TestRenderExamplesRefuses(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n", `kind "Pod"`},
		{"apiVersion: v1\nkind: Node\nmetadata:\n  name: [x\n", "bad.yaml"},
		{"apiVersion: v1\nkind: Node\nmetadata:\n  name: x\n  labels:\n    a: '{{ver}}'\n", "the only placeholder"},
		{"# nothing\n", "no Node manifest"},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "bad.yaml"), c.content)
		if _, err := RenderExamples(dir, "1.0"); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("%q: got %v, want %q naming the file", c.content, err, c.want)
		}
	}
}

// The examples step publishes the manifests, is up to date when nothing
// changed and re-runs when one changes.
func TestExamplesStep(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "VERSION"), "VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n")
	src := filepath.Join(root, filepath.FromSlash(ExamplesDir))
	os.MkdirAll(src, 0o755)
	writeFile(t, filepath.Join(src, "n.yaml"), "apiVersion: v1\nkind: Node\nmetadata:\n  name: n\n  labels:\n    metalk8s.scality.com/version: '{{version}}'\n")
	t.Setenv("BUILD_ROOT", filepath.Join(root, "dist"))
	run := func() (step.Status, string) {
		b, log := openSession(t, root)
		defer b.Close()
		if err := examples(context.Background(), b); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		data, err := os.ReadFile(filepath.Join(b.Cfg.RootDir(), "examples", "n.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return b.Engine.Results()[0].Status, string(data)
	}
	if s, data := run(); s != step.Ran || !strings.Contains(data, "'2.0.0-dev'") {
		t.Fatalf("first run: %s\n%s", s, data)
	}
	if s, _ := run(); s != step.UpToDate {
		t.Fatalf("no-op: %s", s)
	}
	writeFile(t, filepath.Join(src, "n.yaml"), "apiVersion: v1\nkind: Node\nmetadata:\n  name: m\n")
	if s, data := run(); s != step.Ran || !strings.Contains(data, "name: m") {
		t.Fatalf("after an edit: %s\n%s", s, data)
	}
}
