package targets

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func fileSHA256(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return string(h.Sum(nil))
}

// The iso target end to end, against a local upstream: the ISO is written
// from what exists, readers agree with it, it is reproducible, and the
// target says what is missing.
func TestIsoEndToEnd(t *testing.T) {
	tools := testenv.Need(t, "isoinfo", "bsdtar", "implantisomd5", "skopeo")
	u := startUpstream(t)
	var sums []string
	for i := 0; i < 2; i++ {
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
		list := u.list(t, root, "library/alpha", "library/beta")
		writePackages(t, root)
		b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		err := Iso(context.Background(), b)
		if !errors.Is(err, build.ErrNotBuiltYet) || !strings.Contains(log.String(), "saltTree") {
			t.Fatalf("want a not-built-yet error naming saltTree, got %v\n%s", err, log)
		}
		out := b.IsoPath()
		sums = append(sums, fileSHA256(t, out))
		if i == 1 {
			break
		}

		d, err := exec.Command(tools[0], "-d", "-i", out).CombinedOutput()
		if err != nil {
			t.Fatalf("isoinfo -d: %v\n%s", err, d)
		}
		for _, want := range []string{"Volume id: MetalK8s 2.0.0-dev", "Rock Ridge signatures version 1 found", "Joliet with UCS level 3 found"} {
			if !strings.Contains(string(d), want) {
				t.Errorf("isoinfo -d lacks %q:\n%s", want, d)
			}
		}
		p, err := exec.Command(tools[0], "-i", out, "-x", "/PRODUCT.TXT;1").Output()
		if err != nil || !strings.Contains(string(p), "VERSION=2.0.0-dev\n") {
			t.Fatalf("product.txt from the ISO: %v %q", err, p)
		}
		// implantisomd5 itself is the oracle: re-implanting a copy must not
		// change a byte. (checkisomd5 rejects even implantisomd5's own
		// output on images this small, so it is used on larger ones in
		// buildchain/iso.)
		cp := filepath.Join(t.TempDir(), "copy.iso")
		data, _ := os.ReadFile(out)
		os.WriteFile(cp, data, 0o644)
		if o, err := exec.Command(tools[2], "--force", cp).CombinedOutput(); err != nil {
			t.Fatalf("implantisomd5: %v\n%s", err, o)
		}
		if fileSHA256(t, cp) != fileSHA256(t, out) {
			t.Fatal("implantisomd5 changes our implanted checksum")
		}
		sumfile, _ := os.ReadFile(filepath.Join(filepath.Dir(out), "SHA256SUM"))
		if !strings.Contains(string(sumfile), "metalk8s.iso") {
			t.Fatalf("SHA256SUM: %q", sumfile)
		}
		x := t.TempDir()
		if o, err := exec.Command(tools[1], "-xf", out, "-C", x).CombinedOutput(); err != nil {
			t.Fatalf("bsdtar: %v\n%s", err, o)
		}
		if conf, err := os.ReadFile(filepath.Join(x, "registry-config.inc.j2")); err != nil || !strings.Contains(string(conf), "{{ repository }}/alpha/") {
			t.Errorf("registry-config.inc.j2 in the ISO: %v\n%s", err, conf)
		}
		for _, f := range []string{"packages/redhat/metalk8s/hello-1.0-1.noarch.rpm", "packages/redhat/metalk8s/repodata/repomd.xml"} {
			if _, err := os.Stat(filepath.Join(x, f)); err != nil {
				t.Errorf("the ISO lacks %s: %v", f, err)
			}
		}
		var info struct{ Digest string }
		json.Unmarshal(skopeo(t, "inspect", "dir:"+filepath.Join(x, "images", "alpha", "1.0")), &info)
		if info.Digest != u.digests["library/alpha"] {
			t.Fatalf("image read back from the ISO has digest %s, want %s", info.Digest, u.digests["library/alpha"])
		}
		b.Close()

		// Nothing changed: every step is up to date.
		b2, log2 := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		Iso(context.Background(), b2)
		for _, r := range b2.Engine.Results() {
			if r.Status != step.UpToDate {
				t.Errorf("re-run: %s %s\n%s", r.Step, r.Status, log2)
			}
		}
		b2.Close()
	}
	if sums[0] != sums[1] {
		t.Fatal("two builds of the same inputs gave different ISOs")
	}
}

// writePackages gives a test project one shipped repository holding one
// package built here, so packaging needs no upstream.
func writePackages(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, "packages")
	os.MkdirAll(dir, 0o755)
	files := map[string]string{
		"packages.yaml": "repositories:\n  - name: metalk8s\n    kind: shipped\nsets:\n  - name: local\n    packages: [hello]\nlocal:\n  - spec: hello.yaml\n    repo: metalk8s\n",
		"hello.yaml":    "name: hello\nversion: \"1.0\"\nrelease: \"1\"\narch: noarch\nsummary: test package\ndescription: test package\nlicense: MIT\nfiles:\n  - path: /etc/hello\n    content: hi\n    mode: \"0644\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
