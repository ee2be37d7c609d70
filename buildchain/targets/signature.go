package targets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/isosign"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// afterIso writes what goes beside the ISO about it.
func afterIso(ctx context.Context, b *build.Session) error {
	if err := isoSignature(ctx, b); err != nil {
		return err
	}
	return sizeReport(ctx, b)
}

// IsoSignaturePath is where the ISO's detached signature goes.
func IsoSignaturePath(b *build.Session) string { return b.IsoPath() + ".asc" }

// signStep signs the output of the step dep, the file in, into out with
// ISO_SIGNING_KEY. Without a key, a signature left by an earlier build is
// removed: it would not match what this build wrote, and whoever checks
// it would blame the ISO.
func signStep(ctx context.Context, b *build.Session, name, dep, in, out string) error {
	if b.Cfg.IsoSigningKey == "" {
		if b.Engine.Planning() {
			return nil
		}
		if err := os.Remove(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	key, err := isosign.LoadKey(b.Cfg.IsoSigningKey)
	if err != nil {
		return err
	}
	inputs := []step.Input{
		step.Value("key", key.Fingerprint()),
		step.Value("epoch", b.Cfg.Epoch().String()),
	}
	if dep != "" {
		inputs = append(inputs, step.Output(dep))
	}
	return b.Engine.Run(ctx, step.Step{
		Name:    name,
		Inputs:  inputs,
		Outputs: []string{out},
		Run: func(context.Context) error {
			if in == b.IsoPath() {
				if h := resumeIsoDigest(b, in); h != nil {
					var buf bytes.Buffer
					if ok, err := key.SignSHA256(&buf, h, b.Cfg.Epoch()); err != nil {
						return err
					} else if ok {
						return fsutil.WriteFile(out, buf.Bytes(), 0o644)
					}
				}
			}
			return key.SignFile(out, in, b.Cfg.Epoch())
		},
	})
}

func isoSignature(ctx context.Context, b *build.Session) error {
	return signStep(ctx, b, "iso-signature", "iso", b.IsoPath(), IsoSignaturePath(b))
}

// isoDigest is the SHA-256 state the ISO step ended with (see
// iso.Result.SHA256State), for the ISO file of that size, mtime and
// inode: the signature resumes from it rather than read the ISO's
// gigabytes again. Like the manifest's hash cache it trusts the file's
// stat, which changes with every publication by rename.
type isoDigest struct {
	cachedHash
	State []byte `json:"sha256_state"`
}

func isoDigestPath(b *build.Session) string {
	return filepath.Join(b.Cfg.BuildRoot, "cache", "iso-sha256.json")
}

// saveIsoDigest records res's SHA-256 state for the ISO at isoPath; without
// one, it removes a record an earlier build left.
func saveIsoDigest(b *build.Session, isoPath string, res *iso.Result) error {
	p := isoDigestPath(b)
	fi, err := os.Stat(isoPath)
	if err != nil {
		return err
	}
	key, ok := statKey(fi)
	if !ok || len(res.SHA256State) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	key.SHA256 = res.SHA256
	data, err := json.Marshal(isoDigest{cachedHash: key, State: res.SHA256State})
	if err != nil {
		return err
	}
	return fsutil.WriteFile(p, data, 0o644)
}

// resumeIsoDigest is a SHA-256 hash that has consumed the ISO at
// isoPath, from the ISO step's record, or nil when the record is missing,
// does not parse, is of another file or does not give its own digest.
func resumeIsoDigest(b *build.Session, isoPath string) hash.Hash {
	data, err := os.ReadFile(isoDigestPath(b))
	if err != nil {
		return nil
	}
	var d isoDigest
	if json.Unmarshal(data, &d) != nil || d.SHA256 == "" {
		return nil
	}
	fi, err := os.Stat(isoPath)
	if err != nil {
		return nil
	}
	key, ok := statKey(fi)
	if !ok || !sameFile(d.cachedHash, key) {
		return nil
	}
	h := sha256.New()
	if h.(encoding.BinaryUnmarshaler).UnmarshalBinary(d.State) != nil || hex.EncodeToString(h.Sum(nil)) != d.SHA256 {
		return nil
	}
	return h
}

// manifestSignature signs the in-ISO manifest, so that the installer can
// trust a mounted ISO file by file (the ISO's own signature needs the
// whole image, which a mounted one is not).
func manifestSignature(ctx context.Context, b *build.Session) error {
	in := filepath.Join(b.Cfg.RootDir(), isomanifest.Name)
	return signStep(ctx, b, "iso-manifest-signature", "iso-manifest", in, filepath.Join(b.Cfg.RootDir(), isomanifest.SignatureName))
}
