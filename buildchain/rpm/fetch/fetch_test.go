package fetch

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmfile"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func ring(t *testing.T, keys ...*rpmtest.Key) *pgp.Keyring {
	t.Helper()
	r := &pgp.Keyring{}
	for _, k := range keys {
		if err := r.ReadKeys(k.PublicPath, k.Public); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func sigTags(t *testing.T, path string) map[uint32]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rp, err := rpmfile.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]bool{}
	for _, tag := range []uint32{rpmfile.SigRSA, rpmfile.SigDSA, rpmfile.SigPGP, rpmfile.SigGPG} {
		out[tag] = rp.Signature.Has(tag)
	}
	return out
}

// TestVerifyBothSignatureKinds signs fixtures with rpmsign: by default
// (header-only RSAHEADER, as EL8+) and with --rpmv3 (adding the EL7
// header+payload signature, tag 1002), and checks both with our verifier
// and with rpmkeys.
func TestVerifyBothSignatureKinds(t *testing.T) {
	key := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	src := rpmtest.BuildRPMs(t, rpmtest.Standard()...)
	r := ring(t, key)
	for _, v3 := range []bool{false, true} {
		dir := rpmtest.Sign(t, key, src, v3)
		p := filepath.Join(dir, "alpha-1.0-1.x86_64.rpm")
		tags := sigTags(t, p)
		if !tags[rpmfile.SigRSA] || tags[rpmfile.SigPGP] != v3 {
			t.Fatalf("v3=%v: signature tags %v", v3, tags)
		}
		info, err := VerifyRPM(p, r, time.Now())
		if err != nil {
			t.Fatalf("v3=%v: %v", v3, err)
		}
		if len(info.HeaderOnly) != 1 || (len(info.HeaderPayload) == 1) != v3 {
			t.Fatalf("v3=%v: checked %+v", v3, info)
		}
		rpmkeysAgrees(t, key, p, true)
	}
}

// rpmkeysAgrees runs rpmkeys --checksig with only key imported.
func rpmkeysAgrees(t *testing.T, key *rpmtest.Key, path string, ok bool) {
	t.Helper()
	rpmkeys := testenv.Need(t, "rpmkeys")[0]
	db := t.TempDir()
	if out, err := exec.Command(rpmkeys, "--dbpath", db, "--import", key.PublicPath).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	out, err := exec.Command(rpmkeys, "--dbpath", db, "--checksig", path).CombinedOutput()
	if (err == nil) != ok {
		t.Fatalf("rpmkeys --checksig %s: %v (want ok=%v)\n%s", path, err, ok, out)
	}
}

func tamper(t *testing.T, src, name string, at func(rp *rpmfile.Package, size int64) int64) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(src, name))
	if err != nil {
		t.Fatal(err)
	}
	rp, err := rpmfile.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	off := at(rp, int64(len(data)))
	data[off] ^= 0x01
	p := filepath.Join(t.TempDir(), name)
	os.WriteFile(p, data, 0o644)
	return p
}

func TestVerifyRejects(t *testing.T) {
	key := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	other := rpmtest.GPGKey(t, "other-signer", "rsa2048")
	src := rpmtest.BuildRPMs(t, rpmtest.Standard()...)
	r := ring(t, key)
	payload := func(rp *rpmfile.Package, size int64) int64 { return size - 10 }
	header := func(rp *rpmfile.Package, size int64) int64 { return rp.HeaderEnd - 50 } // in the header store
	for _, c := range []struct {
		name, want string
		path       string
		ring       *pgp.Keyring
	}{
		{"payload, header-only signed", "payload was altered", tamper(t, rpmtest.Sign(t, key, src, false), "beta-1.2-3.el7.noarch.rpm", payload), r},
		{"payload, header+payload signed", "RSA header+payload signature", tamper(t, rpmtest.Sign(t, key, src, true), "beta-1.2-3.el7.noarch.rpm", payload), r},
		{"header", "RSA header signature", tamper(t, rpmtest.Sign(t, key, src, false), "beta-1.2-3.el7.noarch.rpm", header), r},
		{"unsigned", "not signed", filepath.Join(src, "beta-1.2-3.el7.noarch.rpm"), r},
		{"unknown key", "not among the repository's keys", filepath.Join(rpmtest.Sign(t, other, src, false), "beta-1.2-3.el7.noarch.rpm"), r},
	} {
		_, err := VerifyRPM(c.path, c.ring, time.Now())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// Tampering is caught by rpm itself too, so the fixtures are honest.
	rpmkeysAgrees(t, key, tamper(t, rpmtest.Sign(t, key, src, true), "beta-1.2-3.el7.noarch.rpm", payload), false)
}

func TestVerifyExpiredKey(t *testing.T) {
	key := rpmtest.GPGKey(t, "expired", "rsa2048")
	signed := rpmtest.Sign(t, key, rpmtest.BuildRPMs(t, rpmtest.Standard()...), false)
	p := filepath.Join(signed, "gamma-0.1-1.x86_64.rpm")
	_, err := VerifyRPM(p, ring(t, key), time.Now())
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired key: err = %v", err)
	}
	// At a time when the key was valid, the same signature is good.
	if _, err := VerifyRPM(p, ring(t, key), time.Date(2001, 1, 1, 13, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("within validity: %v", err)
	}
}

// TestV3SignaturePacket checks the version 3 signature packets of real EL7
// packages, which rpmsign here (gpg 2) can no longer make: the packet is
// built by hand with the fixture key's RSA private key.
func TestV3SignaturePacket(t *testing.T) {
	key := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	priv := el[0].PrivateKey.PrivateKey.(*rsa.PrivateKey)
	data := []byte("header and payload bytes")
	ctime := []byte{0x60, 0, 0, 0}
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(ctime)
	digest := h.Sum(nil)
	s, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte{3, 5, 0}
	body = append(body, ctime...)
	body = binary.BigEndian.AppendUint64(body, el[0].PrimaryKey.KeyId)
	body = append(body, 1, 8, digest[0], digest[1])
	body = binary.BigEndian.AppendUint16(body, uint16(len(s)*8))
	body = append(body, s...)
	pkt := append([]byte{0x89}, byte(len(body)>>8), byte(len(body)))
	pkt = append(pkt, body...)
	r := ring(t, key)
	if id, err := r.Verify(bytes.NewReader(data), pkt, time.Now()); err != nil {
		t.Fatalf("v3 signature: %v", err)
	} else if id != hex.EncodeToString(binary.BigEndian.AppendUint64(nil, el[0].PrimaryKey.KeyId)) {
		t.Fatalf("key id %s", id)
	}
	if _, err := r.Verify(bytes.NewReader([]byte("other bytes")), pkt, time.Now()); err == nil {
		t.Fatal("v3 signature over other data verified")
	}
	other := ring(t, rpmtest.GPGKey(t, "other-signer", "rsa2048"))
	if _, err := other.Verify(bytes.NewReader(data), pkt, time.Now()); !errors.Is(err, pgp.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
}

func items(t *testing.T, dir, base string, r *pgp.Keyring) []Item {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []Item
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		out = append(out, Item{Repo: "fixture", Name: strings.TrimSuffix(e.Name(), ".rpm"), URL: base + "/" + e.Name(), SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Keyring: r, RequireSignature: true})
	}
	return out
}

// TestFetchFromNginx downloads signed fixtures from a real nginx in
// parallel, then finds them in the cache.
func TestFetchFromNginx(t *testing.T) {
	key := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	dir := rpmtest.Sign(t, key, rpmtest.BuildRPMs(t, rpmtest.Standard()...), true)
	n := testenv.StartNginx(t, testenv.NginxConfig{Server: "root " + dir + ";"})
	f := &Fetcher{Dir: t.TempDir(), Jobs: 3}
	its := items(t, dir, n.URL, ring(t, key))
	paths, err := f.Fetch(context.Background(), its)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		if p != f.Path(its[i].SHA256) {
			t.Fatalf("path %s", p)
		}
	}
	// Second run: from the cache even with the server gone.
	for i := range its {
		its[i].URL = "http://127.0.0.1:1/gone"
	}
	if _, err := f.Fetch(context.Background(), its); err != nil {
		t.Fatalf("cached fetch: %v", err)
	}
}

func TestFetchBadChecksumAndResume(t *testing.T) {
	key := rpmtest.GPGKey(t, "pkg-signer", "rsa2048")
	dir := rpmtest.Sign(t, key, rpmtest.BuildRPMs(t, rpmtest.Standard()...), false)
	data, _ := os.ReadFile(filepath.Join(dir, "alpha-1.0-1.x86_64.rpm"))
	var cut atomic.Bool
	cut.Store(true)
	var ranges atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		if cut.Load() && r.Header.Get("Range") == "" {
			// Send half, then drop the connection.
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(200)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			hj, _, _ := w.(http.Hijacker).Hijack()
			hj.Close()
			return
		}
		http.ServeContent(w, r, "alpha.rpm", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	sum := sha256.Sum256(data)
	it := Item{Repo: "fixture", Name: "alpha-2:1.0-1.x86_64", URL: srv.URL + "/alpha.rpm", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Keyring: ring(t, key), RequireSignature: true}
	f := &Fetcher{Dir: t.TempDir(), Jobs: 1}
	if _, err := f.Fetch(context.Background(), []Item{it}); err == nil || !strings.Contains(err.Error(), "partial download kept") {
		t.Fatalf("cut download: err = %v", err)
	}
	cut.Store(false)
	if _, err := f.Fetch(context.Background(), []Item{it}); err != nil {
		t.Fatalf("resumed download: %v", err)
	}
	if ranges.Load() != 1 {
		t.Fatalf("%d range requests, want 1 (resume)", ranges.Load())
	}

	// Wrong checksum in the metadata: a clear error, nothing kept.
	bad := it
	bad.SHA256 = strings.Repeat("ab", 32)
	f2 := &Fetcher{Dir: t.TempDir(), Jobs: 1}
	_, err := f2.Fetch(context.Background(), []Item{bad})
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "alpha-2:1.0-1.x86_64 from repo fixture") {
		t.Fatalf("bad checksum: %v", err)
	}
	assertEmpty(t, f2.Dir)

	// Unsigned package where signatures are required: refused, not kept.
	src := rpmtest.BuildRPMs(t, rpmtest.Standard()...)
	f3 := &Fetcher{Dir: t.TempDir(), Jobs: 2}
	_, err = f3.Fetch(context.Background(), items(t, src, "file://"+src, ring(t, key)))
	if err == nil || !strings.Contains(err.Error(), "not signed") || !strings.Contains(err.Error(), "from repo fixture") {
		t.Fatalf("unsigned: %v", err)
	}
	assertEmpty(t, f3.Dir)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}
