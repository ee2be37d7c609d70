// Package rpmtest (test support only) builds the fixtures the rpm packages' tests check
// against: small RPMs made by the real rpmbuild, OpenPGP keys made by the
// real gpg, and signatures made by the real rpmsign. Results are cached
// under the system temp directory by content, because rpmbuild and gpg
// are slow and every test package needs the same few fixtures.
package rpmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// Epoch is the SOURCE_DATE_EPOCH fixtures are built with.
const Epoch = 1700000000

// Spec is one package to build. Body is everything after the preamble
// fields below: extra preamble lines (Requires:, Provides:, ...) and the
// %description, %install, %files sections.
type Spec struct {
	Name, Version, Release, Arch string
	Epoch                        string
	Body                         string
}

func (s Spec) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Name: %s\nVersion: %s\nRelease: %s\nSummary: %s fixture\nLicense: MIT\nBuildArch: %s\n", s.Name, s.Version, s.Release, s.Name, s.Arch)
	if s.Epoch != "" {
		fmt.Fprintf(&b, "Epoch: %s\n", s.Epoch)
	}
	body := s.Body
	if !strings.Contains(body, "%description") {
		body += "\n%description\n" + s.Name + " fixture.\n"
	}
	if !strings.Contains(body, "%files") {
		body += "\n%files\n"
	}
	b.WriteString(body)
	return b.String()
}

// File returns the name of the RPM built from s.
func (s Spec) File() string {
	return fmt.Sprintf("%s-%s-%s.%s.rpm", s.Name, s.Version, s.Release, s.Arch)
}

// cacheDir returns a directory for key, building it with fill when absent.
// fill writes into a fresh temp dir that is renamed into place, so
// concurrent test binaries never see a half-built fixture.
func cacheDir(t testing.TB, key string, fill func(dir string) error) string {
	t.Helper()
	base := filepath.Join(os.TempDir(), "metalk8s-rpmtest")
	final := filepath.Join(base, key)
	if _, err := os.Stat(final); err == nil {
		return final
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(final); serr != nil {
			t.Fatal(err)
		}
	}
	return final
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// BuildRPMs builds specs with rpmbuild and returns a directory holding the
// RPMs (flat, named by Spec.File). Builds are cached by spec content.
func BuildRPMs(t testing.TB, specs ...Spec) string {
	t.Helper()
	rpmbuild := testenv.Need(t, "rpmbuild")[0]
	var texts []string
	for _, s := range specs {
		texts = append(texts, s.text())
	}
	sort.Strings(texts)
	return cacheDir(t, "rpms-"+digest(texts...), func(dir string) error {
		top, err := os.MkdirTemp("", "rpmbuild-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(top)
		for _, s := range specs {
			spec := filepath.Join(top, s.Name+".spec")
			if err := os.WriteFile(spec, []byte(s.text()), 0o644); err != nil {
				return err
			}
			cmd := exec.Command(rpmbuild, "-bb", "--quiet",
				"--define", "_topdir "+top,
				"--define", "_rpmdir "+dir,
				"--define", "_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
				"--define", "_build_id_links none",
				"--define", "_buildhost fixture.example",
				"--define", "use_source_date_epoch_as_buildtime 1",
				"--define", "clamp_mtime_to_source_date_epoch 1",
				"--define", "_binary_payload w2.xzdio",
				spec)
			cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", Epoch))
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("rpmbuild %s: %v\n%s\n--- spec ---\n%s", s.Name, err, out, s.text())
			}
		}
		return nil
	})
}

// Key is a gpg key made for tests.
type Key struct {
	Home        string // GNUPGHOME holding the secret key
	ID          string // long key ID
	Public      []byte // armored public key
	Secret      []byte // armored secret key, unprotected
	SecretPath  string
	PublicPath  string
	Description string
}

// GPGKey makes (or reuses) an unprotected signing key. name picks one of
// several independent keys; expire is gpg's expiry ("0" for never, or a
// date like "2001-01-01" for an already expired key - gpg refuses to make
// keys that expire in the past, so expired keys are made with
// --faked-system-time).
func GPGKey(t testing.TB, name, algo string) *Key {
	t.Helper()
	gpg := testenv.Need(t, "gpg")[0]
	dir := cacheDir(t, "gpg-"+digest(name, algo, "v2"), func(dir string) error {
		home := filepath.Join(dir, "home")
		if err := os.Mkdir(home, 0o700); err != nil {
			return err
		}
		args := []string{"--batch", "--homedir", home}
		gen := append(args, "--passphrase", "", "--quick-gen-key", name+" <"+name+"@example.com>", algo, "sign", "0")
		if name == "expired" {
			// Made in 2001, valid for a day.
			gen = append(args, "--faked-system-time", "20010101T000000", "--passphrase", "", "--quick-gen-key", name+" <"+name+"@example.com>", algo, "sign", "1d")
		}
		if out, err := exec.Command(gpg, gen...).CombinedOutput(); err != nil {
			return fmt.Errorf("gpg --quick-gen-key: %w\n%s", err, out)
		}
		pub, err := exec.Command(gpg, append(args, "--armor", "--export")...).Output()
		if err != nil {
			return fmt.Errorf("gpg --export: %w", err)
		}
		sec, err := exec.Command(gpg, append(args, "--armor", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys")...).Output()
		if err != nil {
			return fmt.Errorf("gpg --export-secret-keys: %w", err)
		}
		ids, err := exec.Command(gpg, append(args, "--with-colons", "--list-keys")...).Output()
		if err != nil {
			return err
		}
		var id string
		for _, l := range strings.Split(string(ids), "\n") {
			if f := strings.Split(l, ":"); len(f) > 4 && f[0] == "pub" {
				id = f[4]
			}
		}
		// The agent started by gpg must not outlive the fixture build.
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		for n, b := range map[string][]byte{"public.asc": pub, "secret.asc": sec, "id": []byte(id)} {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				return err
			}
		}
		return nil
	})
	k := &Key{Home: filepath.Join(dir, "home"), SecretPath: filepath.Join(dir, "secret.asc"), PublicPath: filepath.Join(dir, "public.asc"), Description: name}
	var err error
	if k.Public, err = os.ReadFile(k.PublicPath); err != nil {
		t.Fatal(err)
	}
	if k.Secret, err = os.ReadFile(k.SecretPath); err != nil {
		t.Fatal(err)
	}
	id, err := os.ReadFile(filepath.Join(dir, "id"))
	if err != nil {
		t.Fatal(err)
	}
	k.ID = string(id)
	return k
}

// Sign signs copies of the RPMs of src into a new cached directory with
// rpmsign. With v3 the signature header also gets the header+payload
// signature (tags 1002/1005) that EL7's rpm checks; without, only the
// header signature (RSAHEADER) of EL8+.
func Sign(t testing.TB, k *Key, src string, v3 bool) string {
	t.Helper()
	tools := testenv.Need(t, "rpmsign", "gpg")
	rpmsign, gpg := tools[0], tools[1]
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	return cacheDir(t, "signed-"+digest(src, k.ID, fmt.Sprint(v3)), func(dir string) error {
		// gpg wants a writable home of its own; copy the cached one.
		home, err := os.MkdirTemp("", "gnupg-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(home)
		if out, err := exec.Command("cp", "-a", k.Home+"/.", home).CombinedOutput(); err != nil {
			return fmt.Errorf("copying GNUPGHOME: %w\n%s", err, out)
		}
		defer exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		var files []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".rpm") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				return err
			}
			p := filepath.Join(dir, e.Name())
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return err
			}
			files = append(files, p)
		}
		args := []string{"--addsign", "--define", "__gpg " + gpg, "--define", "_gpg_name " + k.ID, "--define", "_gpg_path " + home,
			"--define", "__gpg_sign_cmd %{__gpg} --batch %{?_gpg_sign_cmd_extra_args} --no-verbose --no-armor --pinentry-mode loopback --passphrase '' --no-secmem-warning -u \"%{_gpg_name}\" -sbo %{__signature_filename} %{?_gpg_digest_algo:--digest-algo %{_gpg_digest_algo}} %{__plaintext_filename}"}
		if v3 {
			args = append(args, "--rpmv3")
		}
		if k.Description == "expired" {
			// gpg will not sign with an expired key; sign while it was valid.
			args = append(args, "--define", "_gpg_sign_cmd_extra_args --faked-system-time 20010101T120000")
		}
		cmd := exec.Command(rpmsign, append(args, files...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("rpmsign: %w\n%s", err, out)
		}
		return nil
	})
}

// Standard is a small repository with real dependency chains: alpha needs
// beta (versioned) and a file that only gamma ships; beta is noarch and
// needs gamma; delta is weak; alpha obsoletes an old name.
func Standard() []Spec {
	return []Spec{
		{Name: "alpha", Version: "1.0", Release: "1", Arch: "x86_64", Epoch: "2", Body: `Requires: beta >= 1.1
Requires(pre): /usr/sbin/gamma-helper
Requires(post): beta
Requires(preun): beta
Requires: /etc/alpha.conf
Requires: /usr/share/alpha/data
Requires: alpha-api
Provides: alpha-api = 3
Conflicts: oldalpha < 1
Obsoletes: alpha-legacy <= 0.9
Recommends: delta
Suggests: delta-doc
%description
Alpha <tool> & "friends".
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc %{buildroot}/usr/share/alpha
echo hi > %{buildroot}/usr/bin/alpha
echo conf > %{buildroot}/etc/alpha.conf
echo d > %{buildroot}/usr/share/alpha/data
%files
/usr/bin/alpha
%config /etc/alpha.conf
%dir /usr/share/alpha
/usr/share/alpha/data
%ghost /var/log/alpha.log
%changelog
* Mon Jan 01 2024 Dev <dev@example.com> - 2:1.0-1
- second
* Sun Dec 31 2023 Dev <dev@example.com> - 0.9-1
- first
`},
		{Name: "beta", Version: "1.2", Release: "3.el7", Arch: "noarch", Body: `Requires: gamma
%install
mkdir -p %{buildroot}/usr/share/beta
echo b > %{buildroot}/usr/share/beta/b
%files
/usr/share/beta/b
`},
		{Name: "gamma", Version: "0.1", Release: "1", Arch: "x86_64", Body: `%install
mkdir -p %{buildroot}/usr/sbin
echo g > %{buildroot}/usr/sbin/gamma-helper
%files
/usr/sbin/gamma-helper
`},
		{Name: "delta", Version: "5", Release: "1", Arch: "noarch", Body: `%install
mkdir -p %{buildroot}/usr/share/delta
echo d > %{buildroot}/usr/share/delta/d
%files
/usr/share/delta/d
`},
	}
}

// Copy copies the RPMs of src into dst (created), keeping names.
func Copy(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".rpm") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// GPGVerify checks sig over data with the real gpg, in a fresh GNUPGHOME
// holding only pub.
func GPGVerify(t testing.TB, pub, sig, data string) ([]byte, error) {
	t.Helper()
	gpg := testenv.Need(t, "gpg")[0]
	home := t.TempDir()
	os.Chmod(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	if out, err := exec.Command(gpg, "--batch", "--homedir", home, "--import", pub).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	return exec.Command(gpg, "--batch", "--homedir", home, "--verify", sig, data).CombinedOutput()
}
