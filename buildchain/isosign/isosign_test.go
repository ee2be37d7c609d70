package isosign

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
)

func TestSignVerifiedByGPG(t *testing.T) {
	for _, algo := range []string{"rsa2048", "ed25519"} {
		t.Run(algo, func(t *testing.T) {
			k := rpmtest.GPGKey(t, "isosign", algo)
			key, err := LoadKey(k.SecretPath)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			data := filepath.Join(dir, "metalk8s.iso")
			os.WriteFile(data, bytes.Repeat([]byte("iso"), 100000), 0o644)
			sig := data + ".asc"
			// The epoch predates the key: the signature is made at the
			// key's creation, which gpg accepts.
			epoch := time.Unix(1000, 0)
			if err := key.SignFile(sig, data, epoch); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(sig); fi.Mode().Perm() != 0o644 {
				t.Errorf("signature mode %v", fi.Mode())
			}
			if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, data); err != nil || !strings.Contains(string(out), "Good signature") {
				t.Fatalf("gpg --verify: %v\n%s", err, out)
			}
			first, _ := os.ReadFile(sig)
			key.SignFile(sig, data, epoch)
			if again, _ := os.ReadFile(sig); !bytes.Equal(first, again) {
				t.Errorf("same key, file and epoch gave two signatures")
			}

			raw, _ := os.ReadFile(data)
			raw[len(raw)/2] ^= 1
			os.WriteFile(data, raw, 0o644)
			if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, data); err == nil || !strings.Contains(string(out), "BAD signature") {
				t.Fatalf("gpg --verify accepted a tampered file: %v\n%s", err, out)
			}
		})
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKey(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("missing key: %v", err)
	}
	junk := filepath.Join(dir, "junk.asc")
	os.WriteFile(junk, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnope\n-----END PGP PRIVATE KEY BLOCK-----\n"), 0o600)
	if _, err := LoadKey(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk key: %v", err)
	}
	k := rpmtest.GPGKey(t, "isosign", "ed25519")
	if _, err := LoadKey(k.PublicPath); err == nil || !strings.Contains(err.Error(), "holds no secret key") {
		t.Errorf("public key: %v", err)
	}
}
