package demo_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/buildchain/targets"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// rerun is a new `go run mage.go iso` on the demo's build root: the
// demo's session gives up the lock (Close may be called again), and a
// session of its own, with a fresh engine, runs the iso target. It
// returns what each step did.
func rerun(t testing.TB, ctx context.Context, b *build.Session) map[string]step.Status {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := build.OpenConfig(b.Cfg, b.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := targets.RunSubset(ctx, s, targets.Iso); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	out := map[string]step.Status{}
	for _, r := range s.Engine.Results() {
		out[r.Step] = r.Status
	}
	if len(out) == 0 {
		t.Fatal("re-run: the engine reports no step")
	}
	return out
}

func ranSteps(st map[string]step.Status) []string {
	var ran []string
	for n, s := range st {
		if s != step.UpToDate {
			ran = append(ran, n)
		}
	}
	sort.Strings(ran)
	return ran
}

// The full ISO build over the demo's upstreams, signed, is incremental:
// nothing changed runs nothing; one image entry changed fetches that image
// only; one Salt file changed runs the Salt tree and what reads the ISO
// root, and no fetch, no packaging.
func TestE2EIncremental(t *testing.T) {
	testenv.Short(t, "builds the demo ISO and re-runs it")
	root := signedE2EProject(t)
	runDemo(t, root, e2eSizes, func(ctx context.Context, b *build.Session) {
		// (a) Nothing changed: every step is up to date.
		if ran := ranSteps(rerun(t, ctx, b)); len(ran) > 0 {
			t.Fatalf("no-op re-run ran %v", ran)
		}

		// (b) One entry of the images list points at another tag the
		// upstream registry also serves.
		data, err := os.ReadFile(b.Cfg.ImagesFile)
		if err != nil {
			t.Fatal(err)
		}
		list, err := oci.ParseList(b.Cfg.ImagesFile, data)
		if err != nil || len(list) < 2 {
			t.Fatalf("images list: %v (%d entries)", err, len(list))
		}
		changed := &list[0]
		host := b.Cfg.ImageMirrors[changed.Registry()]
		if host == "" {
			t.Fatalf("no mirror for %s in %v", changed.Registry(), b.Cfg.ImageMirrors)
		}
		_, repo, _ := strings.Cut(changed.Source, "/")
		img, err := random.Image(4096, 2)
		if err != nil {
			t.Fatal(err)
		}
		newTag := changed.Version + "-e2e"
		ref, err := name.ParseReference(host+"/"+repo+":"+newTag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		oldDir := "images/" + changed.Name + "/" + changed.Version
		changed.Version, changed.Digest = newTag, d.String()
		writeImagesList(t, b.Cfg.ImagesFile, list)
		st := rerun(t, ctx, b)
		pull := "images/pull:" + changed.Name + ":" + newTag
		want := []string{"completeness", "images/dedup", pull, "iso", "iso-manifest", "iso-manifest-signature", "iso-sbom", "iso-signature", "registry-config", "saltTree"}
		sort.Strings(want)
		if got := ranSteps(st); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("after changing %s, ran\n  %v\nwant\n  %v", changed.Name, got, want)
		}
		for _, im := range list[1:] {
			if s := st["images/pull:"+im.Name+":"+im.Version]; s != step.UpToDate {
				t.Errorf("%s:%s, unchanged, was %q", im.Name, im.Version, s)
			}
		}
		fsys := openISOFS(t, b.IsoPath())
		dir, err := dirlayout.Read(ctx, fsys, "images/"+changed.Name+"/"+newTag, dirlayout.Options{VerifyBlobs: true})
		if err != nil || dir.Manifests[0].Digest != d.String() {
			t.Errorf("the new ISO's %s:%s: %v, want digest %s", changed.Name, newTag, err, d)
		}
		if _, err := fs.Stat(fsys, oldDir); err == nil {
			t.Errorf("the new ISO still holds %s", oldDir)
		}

		// (c) One Salt file changed.
		var sls string
		filepath.WalkDir(filepath.Join(b.Cfg.ProjectRoot, "salt"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && sls == "" && strings.HasSuffix(p, ".sls") {
				sls = p
			}
			return err
		})
		if sls == "" {
			t.Fatal("no .sls in the project's Salt tree")
		}
		content, err := os.ReadFile(sls)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sls, append(content, "# edited by TestE2EIncremental\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		want = []string{"completeness", "iso", "iso-manifest", "iso-manifest-signature", "iso-signature", "saltTree"}
		if got := ranSteps(rerun(t, ctx, b)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("after editing %s, ran\n  %v\nwant\n  %v", sls, got, want)
		}
		if ran := ranSteps(rerun(t, ctx, b)); len(ran) > 0 {
			t.Errorf("no-op re-run after the edits ran %v", ran)
		}
	})
}

// writeImagesList writes list in the format of images/images.yaml.
func writeImagesList(t testing.TB, path string, list []oci.Image) {
	t.Helper()
	var b strings.Builder
	for _, im := range list {
		fmt.Fprintf(&b, "- name: %s\n  version: %q\n  source: %s\n  digest: %s\n", im.Name, im.Version, im.Source, im.Digest)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openISOFS(t testing.TB, p string) fs.FS {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	im, err := iso.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return im.FS()
}
