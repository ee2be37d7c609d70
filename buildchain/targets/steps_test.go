package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func planImages(t *testing.T, b *build.Session) map[string]step.Planned {
	t.Helper()
	plan, err := Plan(context.Background(), b, "images")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]step.Planned{}
	for _, p := range plan {
		m[p.Step] = p
	}
	return m
}

func report(t *testing.T, b *build.Session) []step.Result {
	t.Helper()
	var rep struct{ Steps []step.Result }
	data, err := os.ReadFile(b.ReportPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep.Steps
}

// steps and info on a real build of the image pipeline: statuses before
// and after, the reason after an input changed, and a plan that changes
// nothing.
func TestStepsAndInfoOnImages(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	list := u.list(t, root, "library/alpha", "library/beta")
	env := map[string]string{"IMAGES_FILE": list}
	ctx := context.Background()

	b, _ := u.openBuild(t, root, env)
	p := planImages(t, b)
	for _, n := range []string{"images/pull:alpha:1.0", "images/pull:beta:1.0", "images/dedup"} {
		if p[n].Status != step.NeverRan || p[n].Target != "images" {
			t.Fatalf("before any build, %s: %+v", n, p[n])
		}
	}
	if _, err := os.Stat(b.ImagesDir()); err == nil {
		entries, _ := os.ReadDir(b.ImagesDir())
		if len(entries) > 0 {
			t.Fatalf("a plan fetched images: %v", entries)
		}
	}
	if len(p["images/dedup"].Deps) != 2 {
		t.Fatalf("dedup deps: %v", p["images/dedup"].Deps)
	}
	b.Close()
	if _, err := os.Stat(b.ReportPath()); err == nil {
		t.Fatal("a plan wrote build-report.json")
	}

	b, log := u.openBuild(t, root, env)
	if err := Images(ctx, b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b.Close()
	if !strings.Contains(log.String(), ".. ran") {
		t.Fatalf("no doit prefix in the log:\n%s", log)
	}

	b, _ = u.openBuild(t, root, env)
	plan, err := Plan(ctx, b, "images")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteSteps(&out, plan, "images/pull:*"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("steps images/pull:*:\n%s", out.String())
	}
	for _, l := range lines {
		if f := strings.Fields(l); f[0] != "--" || !strings.HasPrefix(f[1], "images/pull:") || !strings.Contains(l, "up to date") || f[len(f)-1] != "images" {
			t.Fatalf("line %q", l)
		}
	}
	out.Reset()
	if err := WriteSteps(&out, plan, "*:1.0"); err != nil || strings.Contains(out.String(), "dedup") || strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("steps *:1.0: %v\n%s", err, out.String())
	}
	if err := WriteSteps(&out, plan, "nothing*"); err == nil {
		t.Fatal("a pattern matching nothing is not an error")
	}
	out.Reset()
	if err := WriteInfo(&out, plan, "images/pull:alpha:1.0"); err != nil {
		t.Fatal(err)
	}
	info := out.String()
	for _, want := range []string{"status: up to date", "value:entry", "value:upstream", "value:platforms", "depends on: (none)", filepath.Join(b.ImagesDir(), "alpha", "1.0"), "took "} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	out.Reset()
	WriteInfo(&out, plan, "images/dedup")
	if !strings.Contains(out.String(), "depends on: images/pull:alpha:1.0, images/pull:beta:1.0") {
		t.Errorf("dedup info:\n%s", out.String())
	}
	b.Close()

	// alpha now names beta's digest: info names the entry as the reason,
	// dedup would run after it, beta stays up to date. Dropping gamma from
	// nothing and the list losing no image, the plan prunes nothing either.
	alphaDigest := u.digests["library/alpha"]
	u.digests["library/alpha"] = u.digests["library/beta"]
	u.list(t, root, "library/alpha")
	u.digests["library/alpha"] = alphaDigest
	b, _ = u.openBuild(t, root, env)
	plan, err = Plan(ctx, b, "images")
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	WriteInfo(&out, plan, "images/pull:alpha:1.0")
	if !strings.Contains(out.String(), "status: would run") || !strings.Contains(out.String(), "input value:entry changed") {
		t.Fatalf("after the entry changed:\n%s", out.String())
	}
	out.Reset()
	WriteInfo(&out, plan, "images/dedup")
	if !strings.Contains(out.String(), "status: would run") || !strings.Contains(out.String(), "images/pull:beta:1.0 was removed") && !strings.Contains(out.String(), "step:images/pull:beta:1.0 was removed") {
		t.Fatalf("dedup after beta left the list:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(b.ImagesDir(), "beta", "1.0")); err != nil {
		t.Fatalf("a plan pruned beta: %v", err)
	}
	b.Close()
}

// STEPS runs the matching steps and what they depend on, nothing else;
// FORCE re-runs an up-to-date step. Both checked against the report.
func TestSubsetRuns(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	list := u.list(t, root, "library/alpha", "library/beta")
	ctx := context.Background()

	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "STEPS": "images/pull:alpha:*"})
	if err := RunSubset(ctx, b, Images); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b.Close()
	rep := report(t, b)
	if len(rep) != 1 || rep[0].Step != "images/pull:alpha:1.0" || rep[0].Status != step.Ran {
		t.Fatalf("STEPS=images/pull:alpha:*: report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(b.ImagesDir(), "beta")); err == nil {
		t.Fatal("beta was fetched")
	}

	// The dependencies of a selected step run with it.
	b, log = u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "STEPS": "images/dedup"})
	if err := RunSubset(ctx, b, Images); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b.Close()
	got := map[string]step.Status{}
	for _, r := range report(t, b) {
		got[r.Step] = r.Status
	}
	if len(got) != 3 || got["images/pull:alpha:1.0"] != step.UpToDate || got["images/pull:beta:1.0"] != step.Ran || got["images/dedup"] != step.Ran {
		t.Fatalf("STEPS=images/dedup: %v", got)
	}

	b, log = u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "FORCE": "images/pull:beta:*", "STEPS": ""})
	if err := RunSubset(ctx, b, Images); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b.Close()
	got = map[string]step.Status{}
	for _, r := range report(t, b) {
		got[r.Step] = r.Status
		if r.Inputs == nil || r.InputDigest == "" {
			t.Errorf("%s: no input digests in the report", r.Step)
		}
	}
	if got["images/pull:alpha:1.0"] != step.UpToDate || got["images/pull:beta:1.0"] != step.Ran || len(got) != 3 {
		t.Fatalf("FORCE=images/pull:beta:*: %v", got)
	}
}

// A STEPS run prints only the run's lines, not the plan's.
func TestSubsetRunLogsOnce(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	list := u.list(t, root, "library/alpha")
	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "STEPS": "images/pull:*"})
	if err := RunSubset(context.Background(), b, Images); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if strings.Count(log.String(), "images: ") != 1 || strings.Contains(log.String(), "images: 0 B") {
		t.Fatalf("log:\n%s", log)
	}
}
