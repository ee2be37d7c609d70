package archive

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/isosign"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
)

var epoch = time.Unix(1700000000, 0)

type fixture struct {
	name, version, volumeID string
	noManifest              bool
	signWith                *rpmtest.Key // signs the manifest and the ISO
	product                 string       // overrides product.txt
}

// build writes an archive tree and its ISO with the project's writer
// (SHA256SUM beside it), a manifest, and signatures when asked.
func build(t *testing.T, fx fixture) (src, isoPath string) {
	t.Helper()
	if fx.name == "" {
		fx.name, fx.version = "MetalK8s", "2.0.0"
	}
	if fx.volumeID == "" {
		fx.volumeID = fx.name + " " + fx.version
	}
	if fx.product == "" {
		fx.product = "NAME=" + fx.name + "\nVERSION=" + fx.version + "\nSHORT_VERSION=2.0\n"
	}
	src = t.TempDir()
	files := map[string]string{
		"product.txt":             fx.product,
		"bootstrap.sh":            "#!/bin/sh\n",
		"packages/redhat/a/x.rpm": strings.Repeat("payload ", 2000),
		"salt/top.sls":            "base: {}\n",
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var key *isosign.Key
	if fx.signWith != nil {
		var err error
		if key, err = isosign.LoadKey(fx.signWith.SecretPath); err != nil {
			t.Fatal(err)
		}
	}
	if !fx.noManifest {
		entries, err := isomanifest.Build(os.DirFS(src), isomanifest.HashFile)
		if err != nil {
			t.Fatal(err)
		}
		data, err := isomanifest.Marshal(entries)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, isomanifest.Name), data, 0o644)
		if key != nil {
			if err := key.SignFile(filepath.Join(src, isomanifest.SignatureName), filepath.Join(src, isomanifest.Name), epoch); err != nil {
				t.Fatal(err)
			}
		}
	}
	isoPath = filepath.Join(t.TempDir(), "metalk8s.iso")
	if _, err := iso.Write(context.Background(), isoPath, src, iso.ProductOptions(fx.volumeID, epoch)); err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if err := key.SignFile(isoPath+".asc", isoPath, epoch); err != nil {
			t.Fatal(err)
		}
	}
	return src, isoPath
}

func keys(t *testing.T, k *rpmtest.Key) *pgp.Keyring {
	t.Helper()
	ring, err := LoadKeys(k.PublicPath)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not name %q", err, p)
		}
	}
}

// flip changes one byte of a file's data inside the image.
func flip(t *testing.T, isoPath, file string) {
	t.Helper()
	f, err := os.OpenFile(isoPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	im, err := iso.Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	st, err := im.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(st.Sys().(*iso.Entry).Extents()[0].LBA)*2048 + 100
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x20
	f.WriteAt(b, off)
}

func TestOpenSignedISO(t *testing.T) {
	k := rpmtest.GPGKey(t, "iarch", "ed25519")
	_, isoPath := build(t, fixture{signWith: k})
	// A relative path through a symbolic link resolves to the file itself
	// (MetalK8s #3082).
	linkDir := t.TempDir()
	link := filepath.Join(linkDir, "current.iso")
	if err := os.Symlink(isoPath, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(linkDir)
	a, err := Open("current.iso", Options{Keys: keys(t, k)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Path != isoPath || a.Kind != ISOFile {
		t.Errorf("Path %q Kind %s, want %q iso", a.Path, a.Kind, isoPath)
	}
	c := a.Checked
	if c.SHA256SUM == "" || c.Signature == "" || !c.Manifest || c.ManifestSignature == "" {
		t.Errorf("not everything was checked: %+v", c)
	}
	if !strings.HasSuffix(strings.ToUpper(k.ID), strings.ToUpper(c.Signature)) {
		t.Errorf("signer %s, key %s", c.Signature, k.ID)
	}
	if a.Product.ID() != "metalk8s-2.0.0" || a.MountPoint() != "/srv/scality/metalk8s-2.0.0" || a.Product.Get("SHORT_VERSION") != "2.0" {
		t.Errorf("product %+v, mount point %s", a.Product, a.MountPoint())
	}
	if b, err := fs.ReadFile(a.FS, "salt/top.sls"); err != nil || string(b) != "base: {}\n" {
		t.Errorf("reading through the archive: %q %v", b, err)
	}
}

func TestCorruptedISO(t *testing.T) {
	_, isoPath := build(t, fixture{})
	flip(t, isoPath, "packages/redhat/a/x.rpm")
	want, _ := iso.LookupSHA256SUM(filepath.Join(filepath.Dir(isoPath), "SHA256SUM"), "metalk8s.iso")
	_, err := Open(isoPath, Options{})
	wantErr(t, err, isoPath, "checksum mismatch", want, "SHA256SUM")

	// Without SHA256SUM, the manifest names the damaged file.
	os.Remove(filepath.Join(filepath.Dir(isoPath), "SHA256SUM"))
	_, err = Open(isoPath, Options{})
	wantErr(t, err, isoPath, "packages/redhat/a/x.rpm: sha256", "manifest says")

	// Per-file verification is an option (the benchmark's "without").
	a, err := Open(isoPath, Options{SkipFileCheck: true})
	if err != nil {
		t.Fatalf("SkipFileCheck still hashed the files: %v", err)
	}
	a.Close()
	if a.Checked.Manifest {
		t.Error("Checked.Manifest set while skipped")
	}
}

func TestNotISO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.iso")
	os.WriteFile(p, []byte(strings.Repeat("not an image\n", 5000)), 0o644)
	_, err := Open(p, Options{})
	wantErr(t, err, p, "not an ISO 9660 image")
	_, err = Open(filepath.Join(t.TempDir(), "none.iso"), Options{})
	wantErr(t, err, "none.iso")
	short := filepath.Join(t.TempDir(), "short.iso")
	os.WriteFile(short, []byte("x"), 0o644)
	_, err = Open(short, Options{})
	wantErr(t, err, short, "not an ISO 9660 image")
}

func TestSignatures(t *testing.T) {
	k := rpmtest.GPGKey(t, "iarch", "ed25519")
	other := rpmtest.GPGKey(t, "iarch-other", "ed25519")

	t.Run("bad ISO signature", func(t *testing.T) {
		_, isoPath := build(t, fixture{signWith: k})
		// A good signature of other bytes.
		key, _ := isosign.LoadKey(k.SecretPath)
		os.WriteFile(isoPath+".other", []byte("other"), 0o644)
		key.SignFile(isoPath+".asc", isoPath+".other", epoch)
		_, err := Open(isoPath, Options{Keys: keys(t, k)})
		wantErr(t, err, isoPath, "bad signature", ".asc")
	})
	t.Run("unknown signer", func(t *testing.T) {
		_, isoPath := build(t, fixture{signWith: other})
		_, err := Open(isoPath, Options{Keys: keys(t, k)})
		wantErr(t, err, "bad signature", "not among")
	})
	t.Run("missing ISO signature", func(t *testing.T) {
		_, isoPath := build(t, fixture{signWith: k})
		os.Remove(isoPath + ".asc")
		_, err := Open(isoPath, Options{Keys: keys(t, k)})
		wantErr(t, err, "signing key is configured", isoPath+".asc", "missing")
	})
	t.Run("unsigned manifest", func(t *testing.T) {
		_, isoPath := build(t, fixture{})
		key, _ := isosign.LoadKey(k.SecretPath)
		key.SignFile(isoPath+".asc", isoPath, epoch)
		_, err := Open(isoPath, Options{Keys: keys(t, k)})
		wantErr(t, err, "MANIFEST.sha256.asc is missing")
	})
	t.Run("no manifest with a key", func(t *testing.T) {
		_, isoPath := build(t, fixture{noManifest: true})
		key, _ := isosign.LoadKey(k.SecretPath)
		key.SignFile(isoPath+".asc", isoPath, epoch)
		_, err := Open(isoPath, Options{Keys: keys(t, k)})
		wantErr(t, err, "has no MANIFEST.sha256")
	})
	t.Run("no manifest without a key", func(t *testing.T) {
		_, isoPath := build(t, fixture{noManifest: true})
		a, err := Open(isoPath, Options{})
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		if a.Checked.Manifest || a.Checked.SHA256SUM == "" {
			t.Errorf("checked %+v", a.Checked)
		}
	})
	t.Run("manifest signed by another key", func(t *testing.T) {
		// The image signature is good (made by k), the manifest's is not.
		_, isoPath := build(t, fixture{signWith: other})
		key, _ := isosign.LoadKey(k.SecretPath)
		key.SignFile(isoPath+".asc", isoPath, epoch)
		_, err := Open(isoPath, Options{Keys: keys(t, k)})
		wantErr(t, err, "bad signature MANIFEST.sha256.asc")
	})
	t.Run("bad key file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "key.asc")
		os.WriteFile(p, []byte("nope"), 0o644)
		_, err := LoadKeys(p)
		wantErr(t, err, p)
		_, err = LoadKeys(filepath.Join(t.TempDir(), "missing.asc"))
		wantErr(t, err, "missing.asc")
	})
}

func TestVolumeIDMismatch(t *testing.T) {
	_, isoPath := build(t, fixture{volumeID: "MetalK8s 2.0.1"})
	_, err := Open(isoPath, Options{})
	wantErr(t, err, isoPath, "product.txt", `"MetalK8s 2.0.0"`, `"MetalK8s 2.0.1"`)

	// A Solution: display name with a space, lower-cased with a dash.
	_, isoPath = build(t, fixture{name: "Example Sol", version: "1.0.0-dev", product: "NAME='Example Sol'\nVERSION=1.0.0-dev\n"})
	a, err := Open(isoPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if a.MountPoint() != "/srv/scality/example-sol-1.0.0-dev" {
		t.Errorf("mount point %s", a.MountPoint())
	}
}

func TestDirectoryArchive(t *testing.T) {
	src, _ := build(t, fixture{})
	a, err := Open(src+"/./salt/..", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != src || a.Kind != Directory || !a.Checked.Manifest || a.Product.ID() != "metalk8s-2.0.0" {
		t.Errorf("%+v", a)
	}
	os.WriteFile(filepath.Join(src, "salt/top.sls"), []byte("changed\n"), 0o644)
	_, err = Open(src, Options{})
	wantErr(t, err, src, "salt/top.sls")
}

func TestProductProblems(t *testing.T) {
	for _, c := range []struct{ product, want string }{
		{"NAME=MetalK8s\n", "VERSION is missing"},
		{"VERSION=2.0.0\n", "NAME is missing"},
		{"NAME=MetalK8s\nVERSION=../../etc\n", "not a valid mount point name"},
		{"NAME=Metal\x01\nVERSION=1\n", "line 1"},
	} {
		_, err := ParseProduct("x/product.txt", []byte(c.product), "")
		wantErr(t, err, "x/product.txt", c.want)
	}
}

// TestGPGMadeSignature: a detached signature made by gpg itself (how a
// release may be signed by hand) is accepted, and one over a changed
// image refused.
func TestGPGMadeSignature(t *testing.T) {
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("gpg is not installed (hostdeps installs gnupg)")
	}
	k := rpmtest.GPGKey(t, "iarch", "ed25519")
	_, isoPath := build(t, fixture{signWith: k})
	home := t.TempDir()
	os.Chmod(home, 0o700)
	for _, args := range [][]string{
		{"--batch", "--homedir", home, "--import", k.SecretPath},
		{"--batch", "--homedir", home, "--yes", "--armor", "--detach-sign", "-o", isoPath + ".asc", isoPath},
	} {
		if out, err := exec.Command(gpg, args...).CombinedOutput(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	a, err := Open(isoPath, Options{Keys: keys(t, k)})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	// Same content checked by SHA256SUM too; drop it to see the signature fail alone.
	os.Remove(filepath.Join(filepath.Dir(isoPath), "SHA256SUM"))
	flip(t, isoPath, "bootstrap.sh")
	_, err = Open(isoPath, Options{Keys: keys(t, k)})
	wantErr(t, err, "bad signature")
}

// TestBlockDevice opens the archive through a read-only loop device, as
// a CD-ROM is: nothing lies beside it, so the signed manifest vouches.
func TestBlockDevice(t *testing.T) {
	losetup, err := exec.LookPath("losetup")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and losetup")
	}
	k := rpmtest.GPGKey(t, "iarch", "ed25519")
	_, isoPath := build(t, fixture{signWith: k})
	out, err := exec.Command(losetup, "--read-only", "--find", "--show", isoPath).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	a, err := Open(dev, Options{Keys: keys(t, k)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Kind != BlockDevice || a.Checked.ManifestSignature == "" || !a.Checked.Manifest || a.Product.ID() != "metalk8s-2.0.0" {
		t.Errorf("%s: kind %s, checked %+v, product %+v", dev, a.Kind, a.Checked, a.Product)
	}
}
