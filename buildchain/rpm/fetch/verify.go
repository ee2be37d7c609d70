package fetch

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmfile"
)

const (
	tagPayloadDigest     = 5092
	tagPayloadDigestAlgo = 5093
	pgpHashSHA256        = 8
)

// SigInfo says what VerifyRPM checked.
type SigInfo struct {
	HeaderOnly    []string // key IDs of valid header-only signatures (RSAHEADER/DSAHEADER)
	HeaderPayload []string // key IDs of valid header+payload signatures (PGP/GPG)
}

// ErrUnsigned means the package carries no OpenPGP signature at all.
var ErrUnsigned = errors.New("package is not signed")

// VerifyRPM checks the OpenPGP signatures of the RPM at path against ring
// at time now, as `rpmkeys --checksig` does: the header-only signatures of
// EL8+ (tags 267/268) over the main header, and the header+payload
// signatures of EL7 (tags 1002/1005) over everything after the signature
// header. Every signature present must be valid, and at least one must
// exist. Because a header-only signature says nothing about the payload by
// itself, the payload digest the header records (or, for old packages,
// the MD5 of header+payload in the signature header) is checked too.
func VerifyRPM(path string, ring *pgp.Keyring, now time.Time) (SigInfo, error) {
	var info SigInfo
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	rp, err := rpmfile.ReadFile(f)
	if err != nil {
		return info, fmt.Errorf("reading RPM headers: %w", err)
	}
	// Header-only signatures cover the main header, which is in memory;
	// header+payload ones everything after the signature header, read
	// from the file.
	sigs := []struct {
		tag  uint32
		name string
		full bool
	}{
		{rpmfile.SigRSA, "RSA header", false},
		{rpmfile.SigDSA, "DSA header", false},
		{rpmfile.SigPGP, "RSA header+payload", true},
		{rpmfile.SigGPG, "DSA header+payload", true},
	}
	found := 0
	for _, sg := range sigs {
		s, err := rp.Signature.Bytes(sg.tag)
		if err != nil {
			return info, err
		}
		if s == nil {
			continue
		}
		found++
		var signed io.Reader = bytes.NewReader(rp.Header.Raw)
		if sg.full {
			if _, err := f.Seek(rp.HeaderStart, io.SeekStart); err != nil {
				return info, err
			}
			signed = f
		}
		id, err := ring.Verify(signed, s, now)
		if err != nil {
			return info, fmt.Errorf("%s signature: %w", sg.name, err)
		}
		if sg.full {
			info.HeaderPayload = append(info.HeaderPayload, id)
		} else {
			info.HeaderOnly = append(info.HeaderOnly, id)
		}
	}
	if found == 0 {
		return info, ErrUnsigned
	}
	if len(info.HeaderPayload) == 0 {
		if err := checkPayload(f, rp); err != nil {
			return info, err
		}
	}
	return info, nil
}

// checkPayload verifies the payload against the digest the signed header
// records (PAYLOADDIGEST, rpm >= 4.14), or against the MD5 of
// header+payload of the signature header on older packages.
func checkPayload(f *os.File, rp *rpmfile.Package) error {
	digests, err := rp.Header.Strings(tagPayloadDigest)
	if err != nil {
		return err
	}
	if len(digests) > 0 {
		algo, _ := rp.Header.Int(tagPayloadDigestAlgo)
		if algo != pgpHashSHA256 {
			return fmt.Errorf("payload digest algorithm %d is not supported", algo)
		}
		if _, err := f.Seek(rp.HeaderEnd, io.SeekStart); err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != digests[0] {
			return fmt.Errorf("payload digest is %s but the signed header says %s: the payload was altered", got, digests[0])
		}
		return nil
	}
	want, err := rp.Signature.Bytes(rpmfile.SigMD5)
	if err != nil || want == nil {
		return errors.New("the header signature does not cover the payload and the package records no payload digest")
	}
	if _, err := f.Seek(rp.HeaderStart, io.SeekStart); err != nil {
		return err
	}
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return errors.New("header+payload MD5 does not match the signature header: the payload was altered")
	}
	return nil
}
