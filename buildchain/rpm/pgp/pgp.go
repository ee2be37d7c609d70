// Package pgp verifies and makes the OpenPGP signatures the RPM tooling
// uses: detached signatures inside RPM signature headers, and the detached
// armored repomd.xml.asc.
//
// Verification goes through ProtonMail's go-crypto for version 4+
// signature packets. Version 3 packets, which EL7 RPMs carry (rpm -Kv says
// "V3 RSA/SHA256 Signature"), are no longer supported there, so they are
// parsed and checked here: the format is small and fixed.
package pgp

import (
	"bytes"
	"crypto"
	"crypto/dsa" //nolint:staticcheck // EL7-era keys are DSA; verification only
	"crypto/rsa"
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keyring is a set of public keys trusted for one repository.
type Keyring struct {
	list openpgp.EntityList
	// Names are the sources of the keys, for error messages.
	Names []string
}

// ReadKeys parses armored or binary public key blocks; name is where they
// came from, for errors.
func (k *Keyring) ReadKeys(name string, data []byte) error {
	var el openpgp.EntityList
	var err error
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return fmt.Errorf("reading OpenPGP keys from %s: %w", name, err)
	}
	if len(el) == 0 {
		return fmt.Errorf("%s holds no OpenPGP key", name)
	}
	k.list = append(k.list, el...)
	k.Names = append(k.Names, name)
	return nil
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.list) }

// Fingerprints lists the primary key fingerprints, upper-case hex.
func (k *Keyring) Fingerprints() []string {
	var out []string
	for _, e := range k.list {
		out = append(out, fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
	}
	return out
}

// ErrUnknownKey means no key of the ring made the signature.
var ErrUnknownKey = errors.New("signed by a key that is not among the repository's keys")

// Verify checks a binary (unarmored) detached signature over signed at
// time now (key expiry is judged against it). It returns the signer's key
// ID in hex.
func (k *Keyring) Verify(signed io.Reader, sig []byte, now time.Time) (string, error) {
	if len(sig) < 3 {
		return "", errors.New("signature packet is truncated")
	}
	body, err := packetBody(sig)
	if err != nil {
		return "", err
	}
	if body[0] == 3 {
		return k.verifyV3(signed, body, now)
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	p, err := packet.Read(bytes.NewReader(sig))
	if err != nil {
		return "", fmt.Errorf("parsing signature: %w", err)
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return "", errors.New("not a signature packet")
	}
	keyID := "unknown"
	if s.IssuerKeyId != nil {
		keyID = fmt.Sprintf("%016x", *s.IssuerKeyId)
	}
	_, err = openpgp.CheckDetachedSignature(k.list, signed, bytes.NewReader(sig), cfg)
	switch {
	case err == nil:
		return keyID, nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return keyID, fmt.Errorf("key %s: %w", keyID, ErrUnknownKey)
	case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrSignatureExpired):
		return keyID, fmt.Errorf("key %s: %w (checked at %s)", keyID, err, now.UTC().Format(time.RFC3339))
	}
	return keyID, fmt.Errorf("key %s: %w", keyID, err)
}

// packetBody returns the body of the first packet of sig.
func packetBody(sig []byte) ([]byte, error) {
	tag := sig[0]
	if tag&0x80 == 0 {
		return nil, errors.New("not an OpenPGP packet")
	}
	var n, hdr int
	if tag&0x40 == 0 { // old format
		switch tag & 3 {
		case 0:
			n, hdr = int(sig[1]), 2
		case 1:
			if len(sig) < 3 {
				return nil, errors.New("truncated packet")
			}
			n, hdr = int(binary.BigEndian.Uint16(sig[1:])), 3
		case 2:
			if len(sig) < 5 {
				return nil, errors.New("truncated packet")
			}
			n, hdr = int(binary.BigEndian.Uint32(sig[1:])), 5
		default:
			n, hdr = len(sig)-1, 1
		}
	} else {
		switch l := sig[1]; {
		case l < 192:
			n, hdr = int(l), 2
		case l < 224:
			n, hdr = (int(l)-192)<<8+int(sig[2])+192, 3
		case l == 255:
			if len(sig) < 6 {
				return nil, errors.New("truncated packet")
			}
			n, hdr = int(binary.BigEndian.Uint32(sig[2:])), 6
		default:
			return nil, errors.New("partial-length signature packet")
		}
	}
	if n < 1 || hdr+n > len(sig) {
		return nil, errors.New("truncated signature packet")
	}
	return sig[hdr : hdr+n], nil
}

var hashes = map[byte]crypto.Hash{1: crypto.MD5, 2: crypto.SHA1, 8: crypto.SHA256, 9: crypto.SHA384, 10: crypto.SHA512, 11: crypto.SHA224}

// verifyV3 checks a version 3 signature packet (RFC 4880 5.2.2): the hash
// covers the data, then the signature type and creation time.
func (k *Keyring) verifyV3(signed io.Reader, b []byte, now time.Time) (string, error) {
	if len(b) < 19 || b[1] != 5 {
		return "", errors.New("malformed v3 signature packet")
	}
	sigType, ctime := b[2], b[3:7]
	id := binary.BigEndian.Uint64(b[7:15])
	keyID := fmt.Sprintf("%016x", id)
	algo, hid := b[15], b[16]
	if sigType != 0 {
		return keyID, fmt.Errorf("v3 signature of type %#x, want a binary document signature", sigType)
	}
	hf, ok := hashes[hid]
	if !ok || !hf.Available() {
		return keyID, fmt.Errorf("v3 signature uses unsupported hash algorithm %d", hid)
	}
	if hf == crypto.MD5 || hf == crypto.SHA1 {
		return keyID, fmt.Errorf("v3 signature uses the broken hash %v", hf)
	}
	mpis := b[19:]
	keys := k.list.KeysByIdUsage(id, packet.KeyFlagSign)
	if len(keys) == 0 {
		return keyID, fmt.Errorf("key %s: %w", keyID, ErrUnknownKey)
	}
	h := hf.New()
	if _, err := io.Copy(h, signed); err != nil {
		return keyID, err
	}
	h.Write([]byte{sigType})
	h.Write(ctime)
	digest := h.Sum(nil)
	if !bytes.Equal(digest[:2], b[17:19]) {
		return keyID, fmt.Errorf("key %s: v3 signature does not match the signed data (digest prefix differs)", keyID)
	}
	var lastErr error
	for _, key := range keys {
		if key.Entity != nil && key.Entity.Revoked(now) {
			lastErr = fmt.Errorf("key %s is revoked", keyID)
			continue
		}
		if key.SelfSignature != nil && key.PublicKey.KeyExpired(key.SelfSignature, now) {
			lastErr = fmt.Errorf("key %s: %w (checked at %s)", keyID, pgperrors.ErrKeyExpired, now.UTC().Format(time.RFC3339))
			continue
		}
		switch pub := key.PublicKey.PublicKey.(type) {
		case *rsa.PublicKey:
			if algo != 1 && algo != 3 {
				lastErr = fmt.Errorf("v3 signature algorithm %d does not match RSA key %s", algo, keyID)
				continue
			}
			s, _, err := readMPI(mpis)
			if err != nil {
				return keyID, err
			}
			em := make([]byte, pub.Size())
			if len(s) > len(em) {
				lastErr = errors.New("v3 RSA signature longer than the key")
				continue
			}
			copy(em[len(em)-len(s):], s)
			if lastErr = rsa.VerifyPKCS1v15(pub, hf, digest, em); lastErr == nil {
				return keyID, nil
			}
		case *dsa.PublicKey:
			if algo != 17 {
				lastErr = fmt.Errorf("v3 signature algorithm %d does not match DSA key %s", algo, keyID)
				continue
			}
			r, rest, err := readMPI(mpis)
			if err != nil {
				return keyID, err
			}
			s, _, err := readMPI(rest)
			if err != nil {
				return keyID, err
			}
			qlen := (pub.Q.BitLen() + 7) / 8
			if len(digest) > qlen {
				digest = digest[:qlen]
			}
			if dsa.Verify(pub, digest, new(big.Int).SetBytes(r), new(big.Int).SetBytes(s)) {
				return keyID, nil
			}
			lastErr = errors.New("DSA verification failed")
		default:
			lastErr = fmt.Errorf("key %s has an algorithm v3 signatures cannot use", keyID)
		}
	}
	return keyID, fmt.Errorf("key %s: bad v3 signature: %w", keyID, lastErr)
}

func readMPI(b []byte) ([]byte, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errors.New("truncated MPI")
	}
	n := (int(binary.BigEndian.Uint16(b)) + 7) / 8
	if len(b) < 2+n {
		return nil, nil, errors.New("truncated MPI")
	}
	return b[2 : 2+n], b[2+n:], nil
}

// Signer signs with one private key.
type Signer struct {
	entity *openpgp.Entity
	Source string
}

// LoadSigner reads an armored (or binary) private key file. The key must not
// be passphrase-protected: the build runs unattended.
func LoadSigner(path string) (*Signer, error) {
	e, err := ReadSecretKey(path)
	if err != nil {
		return nil, err
	}
	return &Signer{entity: e, Source: path}, nil
}

// ReadSecretKey reads the first unprotected secret key of an armored (or
// binary) key file: the one way the build loads a signing key, for
// repomd.xml here and for the ISO in isosign.
func ReadSecretKey(path string) (*openpgp.Entity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	var el openpgp.EntityList
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	for _, e := range el {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			return nil, fmt.Errorf("signing key %s is protected by a passphrase; export it without one for the build", path)
		}
		return e, nil
	}
	return nil, fmt.Errorf("signing key %s holds no secret key", path)
}

// Sign returns a binary detached signature of data made at time t: with a
// fixed t (SOURCE_DATE_EPOCH) and a deterministic algorithm (RSA PKCS#1,
// EdDSA) the signature is reproducible. A signature cannot predate its
// key, so t is raised to the key's creation time when it is earlier; that
// is as fixed as t itself.
func (s *Signer) Sign(data []byte, t time.Time) ([]byte, error) {
	if c := s.entity.PrimaryKey.CreationTime; t.Before(c) {
		t = c
	}
	var b bytes.Buffer
	// go-crypto salts v4 signatures with a random notation by default;
	// a reproducible build wants the same bytes for the same input.
	deterministic := false
	cfg := &packet.Config{Time: func() time.Time { return t }, DefaultHash: crypto.SHA256, NonDeterministicSignaturesViaNotation: &deterministic}
	if err := openpgp.DetachSign(&b, s.entity, bytes.NewReader(data), cfg); err != nil {
		return nil, fmt.Errorf("signing with %s: %w", s.Source, err)
	}
	return b.Bytes(), nil
}

// SignArmored is Sign with ASCII armor, the format of repomd.xml.asc.
func (s *Signer) SignArmored(data []byte, t time.Time) ([]byte, error) {
	raw, err := s.Sign(data, t)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP SIGNATURE", nil)
	if err != nil {
		return nil, err
	}
	w.Write(raw)
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// PublicKeyArmored exports the signer's public key, for shipping beside
// the repository.
func (s *Signer) PublicKeyArmored() ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := s.entity.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// KeyID is the signer's long key ID in upper-case hex.
func (s *Signer) KeyID() string {
	return strings.ToUpper(fmt.Sprintf("%016x", s.entity.PrimaryKey.KeyId))
}
