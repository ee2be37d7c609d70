package targets

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// Changing one salt file re-runs only the saltTree step and the ISO.
func TestSaltTreeIncremental(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	list := u.list(t, root, "library/alpha")
	writePackages(t, root)
	_, file, _, _ := runtime.Caller(0)
	if err := os.CopyFS(filepath.Join(root, "salt"), os.DirFS(filepath.Join(filepath.Dir(file), "..", "..", "salt"))); err != nil {
		t.Fatal(err)
	}
	ran := func() []string {
		b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		defer b.Close()
		if err := Iso(context.Background(), b); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		var r []string
		for _, res := range b.Engine.Results() {
			if res.Status != step.UpToDate {
				r = append(r, res.Step)
			}
		}
		sort.Strings(r)
		return r
	}
	first := ran()
	if !strings.Contains(strings.Join(first, ","), "saltTree") {
		t.Fatalf("first run did not run saltTree: %v", first)
	}
	versions, err := os.ReadFile(filepath.Join(root, "dist", "root", "salt", "metalk8s", "versions.json"))
	if err != nil || !strings.Contains(string(versions), `"hello"`) || !strings.Contains(string(versions), `"alpha"`) {
		t.Fatalf("versions.json lacks the package or the image: %v\n%s", err, versions)
	}
	if got := ran(); len(got) != 0 {
		t.Fatalf("no-op re-run ran %v", got)
	}
	sls := filepath.Join(root, "salt", "metalk8s", "archives", "init.sls")
	data, _ := os.ReadFile(sls)
	os.WriteFile(sls, append(data, "# edited\n"...), 0o644)
	// The plan sees the edit, declared by the saltTree target. (The iso
	// step reads the root by Stat, not the parts' outputs, so a plan
	// cannot foresee that it follows; the run below shows it does.)
	b, _ := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	plan, err := Plan(context.Background(), b, "images", "packaging", "saltTree", "populateIso", "iso")
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	var would []string
	for _, p := range plan {
		if p.Status != step.UpToDate {
			would = append(would, p.Target+"/"+p.Step)
		}
	}
	if got := strings.Join(would, ","); got != "saltTree/saltTree" {
		t.Errorf("plan after editing one state: %s; want saltTree/saltTree", got)
	}
	// The ISO's in-image manifest lists the edited file, so it is part of
	// re-making the ISO; nothing of the images, packages or SBOM re-runs.
	if got := strings.Join(ran(), ","); got != "iso,iso-manifest,saltTree" {
		t.Fatalf("after editing one state, ran %s; want iso,iso-manifest,saltTree", got)
	}
}
