package targets

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// saltProject gives a test project the real Salt tree's node states and
// what they need to be complete: local packages named as the states
// install them, a pause image (library/beta under that name) for
// containerd's sandbox, and one more state that refers to alpha, the image
// the tests pull. The role states that deploy the product's workloads
// refer to every image of the real images.yaml, which these tests do not
// pull (buildchain/completeness checks them against the real lists): they
// are left out, and the roles top.sls names are empty.
func saltProject(t *testing.T, u *upstream, root string) (imagesFile string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	salt := filepath.Join(root, "salt")
	if err := os.CopyFS(salt, os.DirFS(filepath.Join(filepath.Dir(file), "..", "..", "salt"))); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"roles", "addons", "utils", "repo/deployed.sls", "repo/files/repositories.yaml.j2",
		"kubernetes/etcd", "kubernetes/apiserver", "kubernetes/controller-manager", "kubernetes/scheduler"} {
		if err := os.RemoveAll(filepath.Join(salt, "metalk8s", filepath.FromSlash(p))); err != nil {
			t.Fatal(err)
		}
	}
	for _, role := range []string{"bootstrap", "master", "etcd"} {
		dir := filepath.Join(salt, "metalk8s", "roles", role)
		os.MkdirAll(dir, 0o755)
		writeFile(t, filepath.Join(dir, "init.sls"), "Role "+role+":\n  test.nop: []\n")
	}
	writeFile(t, filepath.Join(root, "salt", "metalk8s", "fixture.sls"),
		"{%- from 'metalk8s/map.jinja' import versions with context %}\n"+
			"Fixture image:\n  test.show_notification:\n    - text: {{ versions.images.alpha.source }}:{{ versions.images.alpha.version }}\n")
	dir := filepath.Join(root, "packages")
	os.MkdirAll(dir, 0o755)
	names := []string{"hello", "container-selinux", "containerd", "kubelet", "kubectl", "cri-tools"}
	var local strings.Builder
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n+".yaml"), "name: "+n+"\nversion: \"1.0\"\nrelease: \"1\"\narch: noarch\nsummary: test package\ndescription: test package\nlicense: MIT\nfiles:\n  - path: /etc/"+n+"\n    content: hi\n    mode: \"0644\"\n")
		local.WriteString("  - spec: " + n + ".yaml\n    repo: metalk8s\n")
	}
	writeFile(t, filepath.Join(dir, "packages.yaml"), "repositories:\n  - name: metalk8s\n    kind: shipped\nsets:\n  - name: local\n    packages: ["+strings.Join(names, ", ")+"]\nlocal:\n"+local.String())
	list := u.list(t, root, "library/alpha", "library/beta")
	data, _ := os.ReadFile(list)
	writeFile(t, list, strings.Replace(string(data), "name: beta", "name: pause", 1))
	return list
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The iso target refuses an incomplete root before the ISO step, naming
// the image, and records the report in build-report.json once complete.
func TestIsoCompleteness(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	list := saltProject(t, u, root)
	fixture := filepath.Join(root, "salt", "metalk8s", "fixture.sls")
	good, _ := os.ReadFile(fixture)
	os.Remove(fixture)

	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	err := Iso(context.Background(), b)
	b.Close()
	if err == nil || !strings.Contains(err.Error(), "unused image: images/alpha/1.0") {
		t.Fatalf("want the unused image named, got %v\n%s", err, log)
	}
	if _, err := os.Stat(b.IsoPath()); err == nil {
		t.Fatal("an ISO was written from an incomplete root")
	}
	for _, r := range b.Engine.Results() {
		if r.Step == "iso" {
			t.Fatalf("the iso step ran after a failed completeness check\n%s", log)
		}
	}

	// COMPLETENESS=report: the same root is reported, and the ISO written.
	b, log = u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "COMPLETENESS": "report"})
	if err := Iso(context.Background(), b); err != nil {
		t.Fatalf("report mode failed the build: %v\n%s", err, log)
	}
	b.Close()
	if _, err := os.Stat(b.IsoPath()); err != nil {
		t.Fatalf("report mode wrote no ISO: %v", err)
	}
	if !strings.Contains(log.String(), "unused image: images/alpha/1.0") || !strings.Contains(log.String(), "NOT complete") {
		t.Fatalf("report mode did not report the unused image:\n%s", log)
	}
	rep, err := os.ReadFile(filepath.Join(filepath.Dir(b.IsoPath()), "completeness.json"))
	if err != nil || !strings.Contains(string(rep), "alpha/1.0") {
		t.Fatalf("completeness.json: %v\n%s", err, rep)
	}

	os.WriteFile(fixture, good, 0o644)
	b, log = u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	if err := Iso(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b.Close()
	var report struct {
		Completeness struct {
			Images, References, Packages int
			Unused                       []string
		}
	}
	data, err := os.ReadFile(b.ReportPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &report); err != nil {
		t.Fatal(err)
	}
	if c := report.Completeness; c.Images != 2 || c.Packages != 6 || c.References < 2 || len(c.Unused) != 0 {
		t.Fatalf("completeness section: %+v\n%s", c, data)
	}

	// Up to date, it still reports.
	b, log = u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	Iso(context.Background(), b)
	b.Close()
	for _, r := range b.Engine.Results() {
		if r.Status != step.UpToDate {
			t.Errorf("re-run: %s %s\n%s", r.Step, r.Status, log)
		}
	}
	data, _ = os.ReadFile(b.ReportPath())
	if !strings.Contains(string(data), `"completeness"`) {
		t.Fatalf("an up-to-date run drops the completeness section:\n%s", data)
	}
}
