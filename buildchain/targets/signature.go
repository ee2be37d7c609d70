package targets

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/metalk8s/buildchain/buildchain/build"
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
		Run:     func(context.Context) error { return key.SignFile(out, in, b.Cfg.Epoch()) },
	})
}

func isoSignature(ctx context.Context, b *build.Session) error {
	return signStep(ctx, b, "iso-signature", "iso", b.IsoPath(), IsoSignaturePath(b))
}

// manifestSignature signs the in-ISO manifest, so that the installer can
// trust a mounted ISO file by file (the ISO's own signature needs the
// whole image, which a mounted one is not).
func manifestSignature(ctx context.Context, b *build.Session) error {
	in := filepath.Join(b.Cfg.RootDir(), isomanifest.Name)
	return signStep(ctx, b, "iso-manifest-signature", "iso-manifest", in, filepath.Join(b.Cfg.RootDir(), isomanifest.SignatureName))
}
