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
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
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
	if c := k.entity.PrimaryKey.CreationTime; t.Before(c) {
		t = c
	}
	// go-crypto salts signatures with a random notation by default; a
	// reproducible build wants the same bytes for the same input.
	deterministic := false
	cfg := &packet.Config{Time: func() time.Time { return t }, DefaultHash: crypto.SHA256, NonDeterministicSignaturesViaNotation: &deterministic}
	if err := openpgp.ArmoredDetachSign(w, k.entity, r, cfg); err != nil {
		return fmt.Errorf("signing with %s: %w", k.Source, err)
	}
	_, err := io.WriteString(w, "\n")
	return err
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
