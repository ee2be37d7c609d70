// Package isosign makes the detached, armored OpenPGP signature published
// beside the ISO (metalk8s.iso.asc), which `gpg --verify` checks.
//
// It streams the signed file: the ISO is gigabytes, and
// buildchain/rpm/pgp's Signer signs byte slices (repomd.xml). The key is
// loaded by pgp.ReadSecretKey, as that package loads its own.
package isosign

import (
	"crypto"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
)

// Key is an unprotected OpenPGP secret key.
type Key struct {
	entity *openpgp.Entity
	Source string
}

// LoadKey reads an armored (or binary) secret key file, as the build
// loads every signing key (pgp.ReadSecretKey). The key must not be
// protected by a passphrase: the build runs unattended.
func LoadKey(path string) (*Key, error) {
	e, err := pgp.ReadSecretKey(path)
	if err != nil {
		return nil, fmt.Errorf("ISO %w", err)
	}
	return &Key{entity: e, Source: path}, nil
}

// Fingerprint is the primary key's fingerprint, upper-case hex: a step
// input, so that a new key re-signs.
func (k *Key) Fingerprint() string { return fmt.Sprintf("%X", k.entity.PrimaryKey.Fingerprint) }

// Sign writes an armored detached signature of r to w, made at time t.
// With a fixed t (SOURCE_DATE_EPOCH) and a deterministic algorithm (RSA
// PKCS#1, EdDSA) the signature is reproducible. A signature cannot predate
// its key (gpg rejects it as a time conflict), so t is raised to the
// key's creation time when it is earlier; that is as fixed as t itself.
func (k *Key) Sign(w io.Writer, r io.Reader, t time.Time) error {
	if err := openpgp.ArmoredDetachSign(w, k.entity, r, k.config(t)); err != nil {
		return fmt.Errorf("signing with %s: %w", k.Source, err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func (k *Key) config(t time.Time) *packet.Config {
	if c := k.entity.PrimaryKey.CreationTime; t.Before(c) {
		t = c
	}
	// go-crypto salts signatures with a random notation by default; a
	// reproducible build wants the same bytes for the same input.
	deterministic := false
	return &packet.Config{Time: func() time.Time { return t }, DefaultHash: crypto.SHA256, NonDeterministicSignaturesViaNotation: &deterministic}
}

// SignSHA256 writes what Sign writes for a message, from h, a SHA-256
// hash that has consumed the message's bytes and nothing else (resumed
// from iso.Result.SHA256State, say), so that a message of gigabytes is
// not read and hashed a second time. ok is false, and nothing is
// written, when the key's signatures are not plain SHA-256 ones (v6 keys
// salt the hash first; some curves need a longer hash): the caller then
// uses Sign. h is spent.
func (k *Key) SignSHA256(w io.Writer, h hash.Hash, t time.Time) (ok bool, err error) {
	cfg := k.config(t)
	// As openpgp.ArmoredDetachSign (go-crypto v1.5: detachSign and
	// createSignaturePacket) makes the signature, with the hash it would
	// choose; TestSignSHA256 holds the two to the same bytes.
	key, found := k.entity.SigningKeyById(cfg.Now(), cfg.SigningKey())
	if !found || key.PrivateKey == nil || key.PrivateKey.Encrypted || !plainSHA256(key.PublicKey) || h.Size() != crypto.SHA256.Size() {
		return false, nil
	}
	pub := key.PublicKey
	lifetime := cfg.SigLifetime()
	sig := &packet.Signature{
		Version:           pub.Version,
		SigType:           packet.SigTypeBinary,
		PubKeyAlgo:        pub.PubKeyAlgo,
		Hash:              crypto.SHA256,
		CreationTime:      cfg.Now(),
		IssuerKeyId:       &pub.KeyId,
		IssuerKeyVersion:  uint8(pub.Version),
		IssuerFingerprint: pub.Fingerprint,
		Notations:         cfg.Notations(),
		SigLifetimeSecs:   &lifetime,
	}
	if err := sig.Sign(h, key.PrivateKey, cfg); err != nil {
		return true, fmt.Errorf("signing with %s: %w", k.Source, err)
	}
	out, err := armor.Encode(w, openpgp.SignatureType, nil)
	if err != nil {
		return true, err
	}
	if err := sig.Serialize(out); err != nil {
		return true, err
	}
	if err := out.Close(); err != nil {
		return true, err
	}
	_, err = io.WriteString(w, "\n")
	return true, err
}

// plainSHA256 tells whether go-crypto signs with pub using SHA-256, as
// asked, and nothing before the message: a v4 key whose algorithm
// accepts SHA-256 (go-crypto's acceptableHashesToWrite).
func plainSHA256(pub *packet.PublicKey) bool {
	if pub.Version != 4 {
		return false
	}
	switch pub.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoEd25519:
		return true
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoECDSA:
		c, err := pub.Curve()
		return err == nil && (c == packet.Curve25519 || c == packet.CurveNistP256 || c == packet.CurveBrainpoolP256 || c == packet.CurveSecP256k1)
	}
	return false
}

// SignFile writes the signature of the file at path to out atomically.
func (k *Key) SignFile(out, path string, t time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fsutil.WriteWith(out, 0o644, func(w io.Writer) error {
		return k.Sign(w, f, t)
	})
}
