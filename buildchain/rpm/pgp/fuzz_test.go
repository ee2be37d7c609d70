package pgp

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"testing"
	"time"
)

// v3Packet builds a version 3 signature packet over data with the fixture
// key, as EL7 packages carry (gpg 2 can no longer make them).
func v3Packet(tb testing.TB, s *Signer, data []byte) []byte {
	priv := s.entity.PrivateKey.PrivateKey.(*rsa.PrivateKey)
	ctime := []byte{0x60, 0, 0, 0}
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(ctime)
	digest := h.Sum(nil)
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest)
	if err != nil {
		tb.Fatal(err)
	}
	body := append([]byte{3, 5, 0}, ctime...)
	body = binary.BigEndian.AppendUint64(body, s.entity.PrimaryKey.KeyId)
	body = append(body, 1, 8, digest[0], digest[1])
	body = binary.BigEndian.AppendUint16(body, uint16(len(sig)*8))
	body = append(body, sig...)
	return append([]byte{0x89, byte(len(body) >> 8), byte(len(body))}, body...)
}

// FuzzVerify feeds arbitrary signature packets (and signed data) to
// Verify with a keyring holding the key the seeds are signed with, so
// mutations reach the v3 MPI and v4 packet parsing behind a known issuer.
// Nothing may panic, and only the seeds' exact bytes may verify.
func FuzzVerify(f *testing.F) {
	keyData, err := os.ReadFile("testdata/fuzz-key.asc")
	if err != nil {
		f.Fatal(err)
	}
	var ring Keyring
	if err := ring.ReadKeys("fuzz-key.asc", keyData); err != nil {
		f.Fatal(err)
	}
	s, err := LoadSigner("testdata/fuzz-key.asc")
	if err != nil {
		f.Fatal(err)
	}
	data := []byte("header and payload bytes")
	v4, err := s.Sign(data, time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	v3 := v3Packet(f, s, data)
	f.Add(data, v4)
	f.Add(data, v3)
	f.Add(data, v3[:40])
	now := time.Unix(1800000000, 0)
	f.Fuzz(func(t *testing.T, signed, sig []byte) {
		_, err := ring.Verify(bytes.NewReader(signed), sig, now)
		if err == nil && !bytes.Equal(signed, data) {
			t.Fatalf("a signature over %q verified", signed)
		}
	})
}
