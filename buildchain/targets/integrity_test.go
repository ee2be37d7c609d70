package targets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/isosbom"
	"github.com/metalk8s/buildchain/buildchain/isosign"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/sizereport"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/cdxtest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// integrityBuild builds the ISO of a small project against a local
// upstream and returns the session's build root and ISO path.
func integrityBuild(t *testing.T, env map[string]string) (buildRoot, isoPath, log string) {
	t.Helper()
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	list := u.list(t, root, "library/alpha", "library/beta")
	writePackages(t, root)
	if env == nil {
		env = map[string]string{}
	}
	env["IMAGES_FILE"] = list
	b, buf := u.openBuild(t, root, env)
	Iso(context.Background(), b)
	b.Close()
	if _, err := os.Stat(b.IsoPath()); err != nil {
		t.Fatalf("no ISO: %v\n%s", err, buf)
	}

	// Nothing changed: the integrity steps are up to date too.
	b2, buf2 := u.openBuild(t, root, env)
	Iso(context.Background(), b2)
	for _, r := range b2.Engine.Results() {
		if r.Status != step.UpToDate {
			t.Errorf("re-run: %s %s\n%s", r.Step, r.Status, buf2)
		}
	}
	b2.Close()
	return b.Cfg.BuildRoot, b.IsoPath(), buf.String()
}

func openISO(t *testing.T, p string) *iso.Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	im, err := iso.Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestIsoManifest(t *testing.T) {
	buildRoot, isoPath, _ := integrityBuild(t, nil)
	rootDir := filepath.Join(buildRoot, "root")
	data, err := os.ReadFile(filepath.Join(rootDir, isomanifest.Name))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := isomanifest.Parse(isomanifest.Name, data)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, e := range entries {
		paths[e.Path] = true
	}
	for _, want := range []string{"product.txt", "packages/redhat/metalk8s/hello-1.0-1.noarch.rpm", "images/alpha/1.0/manifest.json", "registry-config.inc.j2"} {
		if !paths[want] {
			t.Errorf("manifest lacks %s:\n%s", want, data)
		}
	}
	if err := isomanifest.VerifyFS(os.DirFS(rootDir)); err != nil {
		t.Fatalf("the build tree: %v", err)
	}
	im := openISO(t, isoPath)
	if err := isomanifest.VerifyFS(im.FS()); err != nil {
		t.Fatalf("the ISO's Rock Ridge tree: %v", err)
	}
	if err := isomanifest.VerifyFS(im.JolietFS()); err != nil {
		t.Fatalf("the ISO's Joliet tree: %v", err)
	}

	// A flipped byte inside the ISO is found and named.
	var target *iso.Entry
	for _, e := range im.Entries() {
		if e.Path() == "product.txt" {
			target = e
		}
	}
	if target == nil || len(target.Extents()) == 0 {
		t.Fatal("product.txt not found in the ISO")
	}
	raw, _ := os.ReadFile(isoPath)
	raw[int64(target.Extents()[0].LBA)*2048] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.iso")
	os.WriteFile(bad, raw, 0o644)
	err = isomanifest.VerifyFS(openISO(t, bad).FS())
	if err == nil || !strings.Contains(err.Error(), "product.txt: sha256") {
		t.Fatalf("flipped byte in product.txt: %v", err)
	}

	// A missing and an extra file in the tree are named.
	os.Remove(filepath.Join(rootDir, "images/alpha/1.0/manifest.json"))
	os.WriteFile(filepath.Join(rootDir, "images/stray"), []byte("x"), 0o644)
	err = isomanifest.VerifyFS(os.DirFS(rootDir))
	if err == nil || !strings.Contains(err.Error(), "images/alpha/1.0/manifest.json: listed in the manifest but missing") ||
		!strings.Contains(err.Error(), "images/stray: not in the manifest") {
		t.Fatalf("missing and extra file: %v", err)
	}
}

// With ISO_SIGNING_KEY, the ISO and its in-ISO manifest are signed, and
// the real gpg accepts both; a tampered ISO fails.
func TestIsoSignature(t *testing.T) {
	k := rpmtest.GPGKey(t, "isosign", "rsa2048")
	buildRoot, isoPath, _ := integrityBuild(t, map[string]string{"ISO_SIGNING_KEY": k.SecretPath})
	sig := isoPath + ".asc"
	if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, isoPath); err != nil || !strings.Contains(string(out), "Good signature") {
		t.Fatalf("gpg --verify %s: %v\n%s", sig, err, out)
	}
	// The manifest's signature is on the ISO, beside the manifest.
	x := t.TempDir()
	im := openISO(t, isoPath)
	for _, n := range []string{isomanifest.Name, isomanifest.SignatureName} {
		data, err := fs.ReadFile(im.FS(), n)
		if err != nil {
			t.Fatalf("%s on the ISO: %v", n, err)
		}
		os.WriteFile(filepath.Join(x, n), data, 0o644)
	}
	if out, err := rpmtest.GPGVerify(t, k.PublicPath, filepath.Join(x, isomanifest.SignatureName), filepath.Join(x, isomanifest.Name)); err != nil {
		t.Fatalf("gpg --verify of the in-ISO manifest: %v\n%s", err, out)
	}
	if err := isomanifest.VerifyFS(im.FS()); err != nil {
		t.Fatalf("the signed ISO: %v", err)
	}

	raw, _ := os.ReadFile(isoPath)
	raw[len(raw)-1] ^= 1
	bad := filepath.Join(t.TempDir(), "metalk8s.iso")
	os.WriteFile(bad, raw, 0o644)
	if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, bad); err == nil || !strings.Contains(string(out), "BAD signature") {
		t.Fatalf("gpg --verify accepted a tampered ISO: %v\n%s", err, out)
	}
	_ = buildRoot
}

// The SBOM on the ISO lists every image by digest, every RPM by NEVRA and
// checksum, and the buildchain by its modules; two builds of the same
// inputs write the same document.
func TestIsoSBOM(t *testing.T) {
	var docs [][]byte
	// The upstream makes random images: both builds use the same.
	u := startUpstream(t)
	digests := u.digests
	for i := 0; i < 2; i++ {
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
		list := u.list(t, root, "library/alpha", "library/beta")
		writePackages(t, root)
		b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
		Iso(context.Background(), b)
		im := openISO(t, b.IsoPath())
		data, err := fs.ReadFile(im.FS(), isosbom.Name)
		if err != nil {
			t.Fatalf("%s on the ISO: %v\n%s", isosbom.Name, err, log)
		}
		docs = append(docs, data)
		if i == 1 {
			break
		}
		var bom cdx.BOM
		if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
			t.Fatal(err)
		}
		if out, err := cdxtest.Validate(t, data); err != nil {
			t.Fatalf("the SBOM does not validate against the CycloneDX schema: %v\n%s", err, out)
		}
		byRef := map[string]cdx.Component{}
		for _, c := range *bom.Components {
			byRef[c.BOMRef] = c
		}
		for _, name := range []string{"alpha", "beta"} {
			c, ok := byRef["image:"+name+":1.0"]
			if !ok {
				t.Fatalf("no image %s in the SBOM:\n%s", name, data)
			}
			d := digests["library/"+name]
			if (*c.Hashes)[0].Value != strings.TrimPrefix(d, "sha256:") || !strings.HasPrefix(c.PackageURL, "pkg:oci/"+name+"@sha256%3A"+strings.TrimPrefix(d, "sha256:")) {
				t.Errorf("image %s: %s %+v, want digest %s", name, c.PackageURL, *c.Hashes, d)
			}
		}
		rpm, ok := byRef["rpm:metalk8s:hello-1.0-1.noarch"]
		if !ok {
			t.Fatalf("no RPM hello in the SBOM:\n%s", data)
		}
		sum := sha256.Sum256(mustRead(t, filepath.Join(b.Cfg.RootDir(), "packages/redhat/metalk8s/hello-1.0-1.noarch.rpm")))
		if (*rpm.Hashes)[0].Value != hex.EncodeToString(sum[:]) || rpm.PackageURL != "pkg:rpm/hello@1.0-1?arch=noarch&repository_id=metalk8s" {
			t.Errorf("RPM: %s %+v", rpm.PackageURL, *rpm.Hashes)
		}
		// A test binary carries no module list (debug.ReadBuildInfo has
		// no Deps); isosbom's own test checks modules on a real binary.
		tools := *bom.Metadata.Tools.Components
		if len(tools) != 1 || tools[0].Name != "github.com/metalk8s/buildchain" {
			t.Errorf("the buildchain is not in the SBOM: %+v", tools)
		}
		// The manifest lists the SBOM, so the installer can check it too.
		if err := isomanifest.VerifyFS(im.FS()); err != nil {
			t.Fatal(err)
		}
		if m, _ := fs.ReadFile(im.FS(), isomanifest.Name); !strings.Contains(string(m), "  "+isosbom.Name+"\n") {
			t.Errorf("the manifest does not list the SBOM:\n%s", m)
		}
	}
	if !bytes.Equal(docs[0], docs[1]) {
		t.Fatalf("two builds of the same inputs wrote different SBOMs:\n%s\n%s", docs[0], docs[1])
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The size report, printed and in build-report.json: beta is alpha plus
// one layer, so alpha's layers are shared and the rest is each one's own.
func TestIsoSizeReport(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	list := u.list(t, root, "library/alpha", "library/beta")
	writePackages(t, root)
	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	Iso(context.Background(), b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sizes *sizereport.Report `json:"sizes"`
	}
	if err := json.Unmarshal(mustRead(t, b.ReportPath()), &doc); err != nil || doc.Sizes == nil {
		t.Fatalf("build-report.json has no sizes: %v", err)
	}
	r := doc.Sizes

	// The oracle: the manifests the registry served.
	type desc struct{ Size int64 }
	var m [2]struct {
		Config desc
		Layers []desc
	}
	json.Unmarshal(u.raw["library/alpha"], &m[0])
	json.Unmarshal(u.raw["library/beta"], &m[1])
	var shared int64
	for _, l := range m[0].Layers {
		shared += l.Size
	}
	wantAlpha := m[0].Config.Size + int64(len(u.raw["library/alpha"]))
	wantBeta := m[1].Config.Size + int64(len(u.raw["library/beta"])) + m[1].Layers[len(m[1].Layers)-1].Size
	want := []sizereport.Image{{Name: "alpha/1.0", Unique: wantAlpha, Shared: shared}, {Name: "beta/1.0", Unique: wantBeta, Shared: shared}}
	if len(r.Images) != 2 || r.Images[0] != want[0] || r.Images[1] != want[1] {
		t.Fatalf("images: %+v, want %+v", r.Images, want)
	}
	if r.ImagesStored != wantAlpha+wantBeta+shared {
		t.Errorf("images stored: %d, want %d", r.ImagesStored, wantAlpha+wantBeta+shared)
	}
	var repo int64
	filepath.Walk(filepath.Join(b.Cfg.RootDir(), "packages/redhat/metalk8s"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			repo += fi.Size()
		}
		return nil
	})
	if len(r.Repos) != 1 || r.Repos[0] != (sizereport.Repo{Name: "metalk8s", Bytes: repo}) {
		t.Errorf("repos: %+v, want metalk8s %d", r.Repos, repo)
	}
	fi, _ := os.Stat(b.IsoPath())
	if r.ISO != fi.Size() || r.Inputs <= 0 || r.Overhead != r.ISO-r.Inputs {
		t.Errorf("ISO %d (file %d), inputs %d, overhead %d", r.ISO, fi.Size(), r.Inputs, r.Overhead)
	}
	for _, line := range []string{"image alpha/1.0: ", "repo metalk8s: ", "ISO "} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("the build log lacks %q:\n%s", line, log)
		}
	}
}

// The manifest reuses the hash of a file whose size, mtime and inode did
// not change, and hashes again a file that was replaced; a build without
// ISO_SIGNING_KEY removes the signature an earlier build left.
func TestIsoManifestCacheAndStaleSignature(t *testing.T) {
	testenv.Need(t, "skopeo")
	k := rpmtest.GPGKey(t, "isosign", "ed25519")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	list := u.list(t, root, "library/alpha")
	writePackages(t, root)
	env := map[string]string{"IMAGES_FILE": list, "ISO_SIGNING_KEY": k.SecretPath}
	run := func() (string, string) {
		b, log := u.openBuild(t, root, env)
		Iso(context.Background(), b)
		b.Close()
		return b.Cfg.BuildRoot, log.String()
	}
	buildRoot, log := run()
	sig := filepath.Join(buildRoot, "metalk8s.iso.asc")
	if _, err := os.Stat(sig); err != nil {
		t.Fatalf("no signature: %v\n%s", err, log)
	}

	// A cached hash is trusted while the file's identity holds...
	cachePath := filepath.Join(buildRoot, "cache", "isomanifest.json")
	var cache map[string]map[string]json.RawMessage
	if err := json.Unmarshal(mustRead(t, cachePath), &cache); err != nil || cache["registry-config.inc.j2"] == nil {
		t.Fatalf("manifest cache: %v", err)
	}
	fake := strings.Repeat("f", 64)
	cache["registry-config.inc.j2"]["sha256"] = json.RawMessage(`"` + fake + `"`)
	data, _ := json.Marshal(cache)
	os.WriteFile(cachePath, data, 0o644)
	extra := filepath.Join(buildRoot, "root", "extra.txt")
	os.WriteFile(extra, []byte("new"), 0o644)
	run()
	m := string(mustRead(t, filepath.Join(buildRoot, "root", isomanifest.Name)))
	if !strings.Contains(m, fake+"  registry-config.inc.j2\n") || !strings.Contains(m, "  extra.txt\n") {
		t.Fatalf("the cache was not used, or the new file not listed:\n%s", m)
	}
	// ...and not once the file is replaced, as every step replaces files.
	conf := filepath.Join(buildRoot, "root", "registry-config.inc.j2")
	content := mustRead(t, conf)
	os.Remove(conf)
	os.WriteFile(conf, content, 0o644)
	run()
	m = string(mustRead(t, filepath.Join(buildRoot, "root", isomanifest.Name)))
	sum := sha256.Sum256(content)
	if !strings.Contains(m, hex.EncodeToString(sum[:])+"  registry-config.inc.j2\n") {
		t.Fatalf("a replaced file kept its cached hash:\n%s", m)
	}

	delete(env, "ISO_SIGNING_KEY")
	t.Setenv("ISO_SIGNING_KEY", "")
	_, log = run()
	if _, err := os.Stat(sig); !os.IsNotExist(err) {
		t.Fatalf("a build without a key left the old signature: %v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(buildRoot, "root", isomanifest.SignatureName)); !os.IsNotExist(err) {
		t.Fatalf("a build without a key left the old manifest signature: %v", err)
	}
}

// A plan says the manifest would change without hashing or writing
// anything, and an unchanged root plans it up to date.
func TestIsoManifestPlan(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	list := u.list(t, root, "library/alpha")
	writePackages(t, root)
	env := map[string]string{"IMAGES_FILE": list}
	b, _ := u.openBuild(t, root, env)
	Iso(context.Background(), b)
	b.Close()
	status := func() map[string]step.Status {
		b, _ := u.openBuild(t, root, env)
		defer b.Close()
		plan, err := Plan(context.Background(), b, "populateIso", "iso")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]step.Status{}
		for _, p := range plan {
			out[p.Step] = p.Status
		}
		return out
	}
	if s := status(); s["iso-manifest"] != step.UpToDate || s["iso-sbom"] != step.UpToDate || s["iso"] != step.UpToDate {
		t.Fatalf("unchanged root: %v", s)
	}
	cache := filepath.Join(b.Cfg.BuildRoot, "cache", "isomanifest.json")
	before := mustRead(t, cache)
	os.WriteFile(filepath.Join(b.Cfg.RootDir(), "extra.txt"), []byte("x"), 0o644)
	if s := status(); s["iso-manifest"] != step.WouldRun || s["iso"] != step.WouldRun {
		t.Fatalf("root with a new file: %v", s)
	}
	if after := mustRead(t, cache); !bytes.Equal(before, after) {
		t.Fatal("a plan wrote the manifest cache")
	}
	if m := mustRead(t, filepath.Join(b.Cfg.RootDir(), isomanifest.Name)); strings.Contains(string(m), "extra.txt") {
		t.Fatal("a plan wrote the manifest")
	}
}

// The ISO's signature is made from the SHA-256 state the ISO step ended
// with, recorded for that very file, instead of reading the ISO again: the
// same bytes as signing the file, and a record of another file (by stat)
// is not used.
func TestIsoSignatureResumesDigest(t *testing.T) {
	testenv.Need(t, "skopeo")
	k := rpmtest.GPGKey(t, "isosign", "ed25519")
	u := startUpstream(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "VERSION"), []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=-dev\n"), 0o644)
	writePackages(t, root)
	env := map[string]string{"IMAGES_FILE": u.list(t, root, "library/alpha"), "ISO_SIGNING_KEY": k.SecretPath}
	b, log := u.openBuild(t, root, env)
	defer b.Close()
	Iso(context.Background(), b)
	isoPath, sig := b.IsoPath(), IsoSignaturePath(b)
	raw, err := os.ReadFile(isoPath)
	if err != nil {
		t.Fatalf("no ISO: %v\n%s", err, log)
	}
	h := resumeIsoDigest(b, isoPath)
	if want := sha256.Sum256(raw); h == nil || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("the ISO step left no usable SHA-256 state for the ISO (%v)", h)
	}
	key, err := isosign.LoadKey(k.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	slow := filepath.Join(t.TempDir(), "slow.asc")
	if err := key.SignFile(slow, isoPath, b.Cfg.Epoch()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(sig)
	if want, _ := os.ReadFile(slow); !bytes.Equal(got, want) {
		t.Errorf("the build's signature differs from signing the file\n%s\n%s", got, want)
	}

	// The record is what the signature is made from: one for other bytes,
	// claiming the ISO's stat, gives a signature of those bytes (which is
	// why it is keyed by size, mtime and inode, as the manifest's cache).
	other := []byte("not the ISO")
	oh := sha256.New()
	oh.Write(other)
	state, _ := oh.(encoding.BinaryMarshaler).MarshalBinary()
	fi, _ := os.Stat(isoPath)
	sk, _ := statKey(fi)
	sk.SHA256 = hex.EncodeToString(oh.Sum(nil))
	data, _ := json.Marshal(isoDigest{cachedHash: sk, State: state})
	if err := os.WriteFile(isoDigestPath(b), data, 0o644); err != nil {
		t.Fatal(err)
	}
	b.Engine.Force(func(n string) bool { return n == "iso-signature" })
	if err := isoSignature(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other")
	os.WriteFile(otherFile, other, 0o644)
	if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, otherFile); err != nil || !strings.Contains(string(out), "Good signature") {
		t.Fatalf("the signature was not made from the record: %v\n%s", err, out)
	}

	// A record of another file is not used: the ISO's mtime moved.
	os.Chtimes(isoPath, time.Unix(1, 0), time.Unix(1, 0))
	if resumeIsoDigest(b, isoPath) != nil {
		t.Fatal("a record of another file's stat was resumed")
	}
	if err := isoSignature(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, isoPath); err != nil || !strings.Contains(string(out), "Good signature") {
		t.Fatalf("gpg --verify after the fallback: %v\n%s", err, out)
	}
	// A record that does not parse, or whose state is not its digest's,
	// is not used either.
	for _, bad := range [][]byte{[]byte("{"), func() []byte {
		fi, _ := os.Stat(isoPath)
		k, _ := statKey(fi)
		k.SHA256 = strings.Repeat("0", 64)
		d, _ := json.Marshal(isoDigest{cachedHash: k, State: state})
		return d
	}()} {
		os.WriteFile(isoDigestPath(b), bad, 0o644)
		if resumeIsoDigest(b, isoPath) != nil {
			t.Errorf("record %s was resumed", bad)
		}
	}
}
