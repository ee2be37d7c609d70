package isosign

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
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

// TestSignSHA256 holds SignSHA256, fed a resumed SHA-256 state, to the
// very bytes Sign writes for the same message, and gpg to accepting them;
// a key whose signatures need another hash declines, writing nothing.
func TestSignSHA256(t *testing.T) {
	msg := bytes.Repeat([]byte("metalk8s iso "), 200000)
	epoch := time.Unix(1700000000, 0)
	for _, algo := range []string{"rsa2048", "ed25519", "nistp256"} {
		t.Run(algo, func(t *testing.T) {
			k := rpmtest.GPGKey(t, "isosign", algo)
			key, err := LoadKey(k.SecretPath)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := key.Sign(&want, bytes.NewReader(msg), epoch); err != nil {
				t.Fatal(err)
			}
			// Hashed in two parts, the state carried over as bytes, as
			// the ISO writer hands it over.
			h1 := sha256.New()
			h1.Write(msg[:len(msg)/3])
			state, err := h1.(encoding.BinaryMarshaler).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
				t.Fatal(err)
			}
			h.Write(msg[len(msg)/3:])
			var got bytes.Buffer
			ok, err := key.SignSHA256(&got, h, epoch)
			if err != nil || !ok {
				t.Fatalf("SignSHA256: %v %v", ok, err)
			}
			// ECDSA signatures are randomized, by Sign as well: for
			// P-256, gpg is the judge.
			if algo != "nistp256" && !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("SignSHA256 wrote\n%s\nSign wrote\n%s", got.Bytes(), want.Bytes())
			}
			dir := t.TempDir()
			data, sig := filepath.Join(dir, "m"), filepath.Join(dir, "m.asc")
			os.WriteFile(data, msg, 0o644)
			os.WriteFile(sig, got.Bytes(), 0o644)
			if out, err := rpmtest.GPGVerify(t, k.PublicPath, sig, data); err != nil || !strings.Contains(string(out), "Good signature") {
				t.Fatalf("gpg --verify: %v\n%s", err, out)
			}
		})
	}
	// P-384 signatures are hashed with SHA-384 (go-crypto picks the
	// curve's hash over the one asked for): declined.
	k := rpmtest.GPGKey(t, "isosign", "nistp384")
	key, err := LoadKey(k.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	h := sha256.New()
	h.Write(msg)
	if ok, err := key.SignSHA256(&got, h, epoch); ok || err != nil || got.Len() != 0 {
		t.Errorf("nistp384: SignSHA256 %v %v, wrote %d bytes; want it declined", ok, err, got.Len())
	}
	// A hash that is not SHA-256 is declined too.
	key, _ = LoadKey(rpmtest.GPGKey(t, "isosign", "ed25519").SecretPath)
	if ok, err := key.SignSHA256(&got, sha512.New(), epoch); ok || err != nil || got.Len() != 0 {
		t.Errorf("SHA-512 hash: SignSHA256 %v %v, wrote %d bytes; want it declined", ok, err, got.Len())
	}
}
