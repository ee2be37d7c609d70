package demo

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmbuild"
)

// Sizes scale the fixture. The defaults make a few MB, enough to show
// shared layers and a signed repository; the benchmark raises them.
type Sizes struct {
	Images     int   // single-platform images, besides the multi-platform one
	LayerBytes int64 // random bytes in each layer (incompressible)
	RPMs       int   // packages in the upstream repository
	RPMBytes   int64 // random bytes in each package's payload
}

// DefaultSizes is the fixture `go run mage.go demo` uses.
func DefaultSizes() Sizes {
	return Sizes{Images: 4, LayerBytes: 256 << 10, RPMs: 6, RPMBytes: 32 << 10}
}

// Image is one image pushed to the upstream registry.
type Image struct {
	Name, Version string
	Source        string // upstream repository, before IMAGE_MIRRORS
	Digest        string // of the pushed manifest or index
	// Platforms maps os/arch[/variant] to the child manifest digest, for
	// the multi-platform index.
	Platforms map[string]string
}

// Package is one RPM served by the upstream repositories.
type Package struct {
	Name, Version, Release, Arch string
	Repo                         string
}

// fixtureTime stamps everything the fixture makes, so the same seed gives
// the same digests whatever the day.
var fixtureTime = time.Unix(1700000000, 0).UTC()

// randomBytes draws n bytes from rng.
func randomBytes(rng *rand.ChaCha8, n int64) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

// layer is a tar layer holding one file of random bytes.
func layer(rng *rand.ChaCha8, file string, n int64) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := randomBytes(rng, n)
	if err := tw.WriteHeader(&tar.Header{Name: file, Mode: 0o644, Size: n, ModTime: fixtureTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.DockerLayer))
}

func image(p v1.Platform, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Created: v1.Time{Time: fixtureTime}, OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/usr/bin"}},
	})
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: fixtureTime}, CreatedBy: "buildchain demo"}}
	}
	return mutate.Append(img, adds...)
}

// pushImages generates the image set from seed and pushes it to the
// registry at host: every image shares one base layer, consecutive pairs
// share a second, each has one of its own, and one index holds an amd64
// and an arm64 image.
func pushImages(ctx context.Context, host string, seed uint64, s Sizes) ([]Image, error) {
	rng := rand.NewChaCha8(seedBytes(seed, "images"))
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	base, err := layer(rng, "usr/share/demo/base.bin", s.LayerBytes)
	if err != nil {
		return nil, err
	}
	var out []Image
	push := func(im Image, write func(name.Reference) error) error {
		ref, err := name.ParseReference(host+"/"+repoPath(im.Source)+":"+im.Version, name.Insecure)
		if err != nil {
			return err
		}
		if err := write(ref); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		out = append(out, im)
		return nil
	}
	var pair v1.Layer
	for i := 0; i < s.Images; i++ {
		if i%2 == 0 {
			if pair, err = layer(rng, fmt.Sprintf("usr/share/demo/pair-%d.bin", i/2), s.LayerBytes); err != nil {
				return nil, err
			}
		}
		own, err := layer(rng, fmt.Sprintf("usr/share/demo/image-%d.bin", i), s.LayerBytes)
		if err != nil {
			return nil, err
		}
		img, err := image(amd64, base, pair, own)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		registry := "docker.io"
		if i%2 == 1 {
			registry = "quay.io"
		}
		n := fmt.Sprintf("demo-%d", i+1)
		im := Image{Name: n, Version: fmt.Sprintf("1.%d.0", i), Source: registry + "/demo/" + n, Digest: d.String()}
		if err := push(im, func(r name.Reference) error { return remote.Write(r, img, remote.WithContext(ctx)) }); err != nil {
			return nil, err
		}
	}

	plats := []v1.Platform{amd64, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	im := Image{Name: "demo-multiarch", Version: "2.0.0", Source: "docker.io/demo/multiarch", Platforms: map[string]string{}}
	for _, p := range plats {
		own, err := layer(rng, "usr/bin/demo-"+p.Architecture, s.LayerBytes/2)
		if err != nil {
			return nil, err
		}
		img, err := image(p, base, own)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		im.Platforms[p.String()] = d.String()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	im.Digest = d.String()
	if err := push(im, func(r name.Reference) error { return remote.WriteIndex(r, idx, remote.WithContext(ctx)) }); err != nil {
		return nil, err
	}
	return out, nil
}

// repoPath is a source without its registry host.
func repoPath(source string) string {
	_, p, _ := cutHost(source)
	return p
}

func cutHost(source string) (string, string, bool) {
	for i := 0; i < len(source); i++ {
		if source[i] == '/' {
			return source[:i], source[i+1:], true
		}
	}
	return "", source, false
}

func seedBytes(seed uint64, what string) [32]byte {
	var b [32]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(seed >> (8 * i))
	}
	copy(b[8:], what)
	return b
}

// buildRepos writes the upstream yum repositories under dir: "upstream"
// (shipped: its packages that the sets need are copied into the ISO) and
// "base" (external: it only satisfies dependencies), each signed with
// signer, with repodata by repogen.
func buildRepos(ctx context.Context, dir string, seed uint64, s Sizes, signer *pgp.Signer) ([]Package, error) {
	rng := rand.NewChaCha8(seedBytes(seed, "rpms"))
	sign := func(data []byte) ([]byte, error) { return signer.Sign(data, fixtureTime) }
	var out []Package
	build := func(repo string, spec rpmbuild.Spec) error {
		spec.Release, spec.Arch = "1", "noarch"
		spec.Summary, spec.Description, spec.License = "MetalK8s demo package "+spec.Name, "A package of the offline demo's upstream.", "Apache-2.0"
		spec.Files = []rpmbuild.File{{Path: "/usr/share/demo/" + spec.Name + ".bin", Content: string(randomBytes(rng, s.RPMBytes)), Mode: "0644"}}
		var buf bytes.Buffer
		if err := spec.Build(&buf, rpmbuild.Options{Epoch: fixtureTime, Sign: sign}); err != nil {
			return fmt.Errorf("building %s: %w", spec.Name, err)
		}
		if err := fsutil.WriteFile(filepath.Join(dir, repo, "Packages", spec.FileName()), buf.Bytes(), 0o644); err != nil {
			return err
		}
		out = append(out, Package{Name: spec.Name, Version: spec.Version, Release: spec.Release, Arch: spec.Arch, Repo: repo})
		return nil
	}
	if err := build("base", rpmbuild.Spec{Name: "demo-runtime", Version: "3.1"}); err != nil {
		return nil, err
	}
	if err := build("base", rpmbuild.Spec{Name: "demo-unused", Version: "0.1"}); err != nil {
		return nil, err
	}
	if err := build("upstream", rpmbuild.Spec{Name: "demo-lib", Version: "1.2", Requires: []string{"demo-runtime >= 3"}}); err != nil {
		return nil, err
	}
	for i := 1; i < s.RPMs; i++ {
		if err := build("upstream", rpmbuild.Spec{Name: fmt.Sprintf("demo-app-%d", i), Version: fmt.Sprintf("1.%d", i), Requires: []string{"demo-lib"}}); err != nil {
			return nil, err
		}
	}
	for _, repo := range []string{"base", "upstream"} {
		t := fixtureTime
		_, err := repogen.Generate(ctx, filepath.Join(dir, repo), repogen.Options{
			Epoch: &t,
			Sign:  func(md []byte) ([]byte, error) { return signer.SignArmored(md, fixtureTime) },
		})
		if err != nil {
			return nil, fmt.Errorf("repodata of %s: %w", repo, err)
		}
	}
	return out, nil
}

// writeKey generates the throwaway signing key of the upstream repos from
// seed (Ed25519, so the same seed gives the same key) and writes it,
// armored and unprotected, to path.
func writeKey(path string, seed uint64) (*pgp.Signer, error) {
	data, err := generateKey(seed)
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	return pgp.LoadSigner(path)
}
