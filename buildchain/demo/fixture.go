package demo

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmbuild"
)

// Sizes scale the fixture. The image set and the package names are the
// real product's (images/images.yaml, packages/packages.yaml): the sizes
// scale their bytes, and fillers are added as dependencies of real
// packages so that every one ships. The defaults make a few MB, enough to
// show shared layers and signed repositories; the benchmark raises them.
type Sizes struct {
	// Images is the number of layers of its own each image has, besides
	// the base layer all share and the one it shares with its neighbour:
	// the image count is the real list's, so this scales bytes.
	Images     int
	LayerBytes int64 // random bytes in each layer (incompressible)
	// RPMs is the number of packages the upstream repositories hold at
	// least: the real names and their dependencies, and then fillers that
	// a real shipped package requires.
	RPMs     int
	RPMBytes int64 // random bytes in each package's payload
}

// DefaultSizes is the fixture `go run mage.go demo` uses.
func DefaultSizes() Sizes {
	return Sizes{Images: 1, LayerBytes: 96 << 10, RPMs: 1, RPMBytes: 16 << 10}
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
	Name, Epoch, Version, Release, Arch string
	Repo                                string
}

// Lists are the real lists the fixture is named after.
type Lists struct {
	ImagesFile   string // images/images.yaml
	PackagesFile string // packages/packages.yaml
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

// multiPlatform is the image of the real list pushed as a multi-platform
// index (amd64 and arm64), as upstream publishes it.
const multiPlatform = "pause"

// pushImages generates one image for each entry of the real image list
// from seed, under the entry's repository path and tag, and pushes it to
// the registry at host: every image shares one base layer, consecutive
// pairs share a second, each has s.Images of its own, and multiPlatform
// is an index of an amd64 and an arm64 image.
func pushImages(ctx context.Context, host string, list []oci.Image, seed uint64, s Sizes) ([]Image, error) {
	rng := rand.NewChaCha8(seedBytes(seed, "images"))
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	base, err := layer(rng, "usr/share/demo/base.bin", s.LayerBytes)
	if err != nil {
		return nil, err
	}
	own := func(name, plat string) ([]v1.Layer, error) {
		var out []v1.Layer
		for j := 0; j < max(s.Images, 1); j++ {
			l, err := layer(rng, fmt.Sprintf("usr/share/demo/%s%s-%d.bin", name, plat, j), s.LayerBytes)
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		}
		return out, nil
	}
	var out []Image
	// Generated in order (the random stream fixes the digests), pushed
	// concurrently: the registry round trips dominate.
	var pushes []func() error
	var pair v1.Layer
	for i, entry := range list {
		ref, err := name.ParseReference(host+"/"+repoPath(entry.Source)+":"+entry.Version, name.Insecure)
		if err != nil {
			return nil, err
		}
		im := Image{Name: entry.Name, Version: entry.Version, Source: entry.Source}
		if i%2 == 0 {
			if pair, err = layer(rng, fmt.Sprintf("usr/share/demo/pair-%d.bin", i/2), s.LayerBytes); err != nil {
				return nil, err
			}
		}
		if entry.Name == multiPlatform {
			idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
			im.Platforms = map[string]string{}
			for _, p := range []v1.Platform{amd64, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
				layers, err := own(entry.Name, "-"+p.Architecture)
				if err != nil {
					return nil, err
				}
				img, err := image(p, append([]v1.Layer{base}, layers...)...)
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
			pushes = append(pushes, func() error {
				if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
					return fmt.Errorf("pushing %s: %w", ref, err)
				}
				return nil
			})
			out = append(out, im)
			continue
		}
		layers, err := own(entry.Name, "")
		if err != nil {
			return nil, err
		}
		img, err := image(amd64, append([]v1.Layer{base, pair}, layers...)...)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		im.Digest = d.String()
		pushes = append(pushes, func() error {
			if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
			return nil
		})
		out = append(out, im)
	}
	if err := parallel(4, pushes); err != nil {
		return nil, err
	}
	return out, nil
}

// parallel runs fns, n at a time, and returns their errors joined.
func parallel(n int, fns []func() error) error {
	sem := make(chan struct{}, n)
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
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

// fixturePackage is how the fixture builds a package of the real sets or
// one of their dependencies: the repository of packages.yaml it is served
// from, its architecture, what it requires and, when no set pins it, its
// version-release. The versions are those of the CentOS 7 era packages
// MetalK8s 2.0 shipped; external repositories (base, extras, updates)
// only satisfy dependencies, as the node's own OS repositories do.
type fixturePackage struct {
	repo, arch, evr string
	requires        []string
}

// fixturePackages cover the sets of packages/packages.yaml and the
// dependencies they pull. A set package missing here is built noarch in
// epel, so a new entry of packages.yaml does not break the demo.
var fixturePackages = map[string]fixturePackage{
	// kubernetes set
	"kubelet":        {"kubernetes", "x86_64", "", []string{"kubernetes-cni >= 0.7.5", "socat", "ebtables", "ethtool", "iptables", "iproute", "util-linux", "conntrack-tools"}},
	"kubectl":        {"kubernetes", "x86_64", "", nil},
	"kubernetes-cni": {"kubernetes", "x86_64", "", nil},
	"cri-tools":      {"kubernetes", "x86_64", "", nil},
	// container-runtime set
	"containerd":        {"epel", "x86_64", "", []string{"container-selinux >= 2:2.74", "runc", "libseccomp"}},
	"container-selinux": {"extras", "noarch", "", []string{"selinux-policy-targeted"}},
	"runc":              {"extras", "x86_64", "1.0.0-65.rc8.el7", []string{"libseccomp"}},
	"skopeo":            {"extras", "x86_64", "0.1.37-1.el7", nil},
	// salt set
	"salt-minion":        {"saltstack", "noarch", "", []string{"salt = 2018.3.4-1.el7"}},
	"salt":               {"saltstack", "noarch", "2018.3.4-1.el7", []string{"python", "m2crypto"}},
	"m2crypto":           {"epel", "x86_64", "0.21.1-17.el7", []string{"python"}},
	"python2-kubernetes": {"epel", "noarch", "8.0.1-1.el7", []string{"python", "python-six", "python-backports"}},
	// what the installer's package requires, once it lands
	"nginx": {"epel", "x86_64", "1.16.1-1.el7", nil},
	// the base OS
	"coreutils":               {"base", "x86_64", "8.22-24.el7", nil},
	"ebtables":                {"base", "x86_64", "2.0.10-16.el7", nil},
	"ethtool":                 {"base", "x86_64", "4.8-10.el7", nil},
	"genisoimage":             {"base", "x86_64", "1.1.11-25.el7", nil},
	"iproute":                 {"base", "x86_64", "4.11.0-25.el7", nil},
	"iptables":                {"base", "x86_64", "1.4.21-33.el7", nil},
	"socat":                   {"base", "x86_64", "1.7.3.2-2.el7", nil},
	"sos":                     {"base", "noarch", "3.7-10.el7", []string{"python"}},
	"util-linux":              {"base", "x86_64", "2.23.2-61.el7", nil},
	"yum-plugin-versionlock":  {"base", "noarch", "1.1.31-52.el7", nil},
	"libseccomp":              {"base", "x86_64", "2.3.1-4.el7", nil},
	"conntrack-tools":         {"base", "x86_64", "1.4.4-5.el7", nil},
	"python":                  {"base", "x86_64", "2.7.5-86.el7", nil},
	"selinux-policy-targeted": {"base", "noarch", "3.13.1-252.el7", nil},
	"python-backports":        {"extras", "x86_64", "1.0-8.el7", nil},
	"python-six":              {"updates", "noarch", "1.9.0-2.el7", nil},
}

// fillerOf is the shipped package that requires the fillers: they ship
// with it, so the benchmark's RPM count lands on the ISO.
const fillerOf = "python2-kubernetes"

// buildRepos writes a yum repository under dir for each repository of the
// real packages.yaml that has a base URL, holding the packages of its
// sets and their dependencies named and versioned as the real ones
// (fixturePackages; pins from the sets), plus fillers up to s.RPMs, each
// package and each repodata signed with signer.
func buildRepos(ctx context.Context, dir string, list *pkglist.List, seed uint64, s Sizes, signer *pgp.Signer) ([]Package, error) {
	rng := rand.NewChaCha8(seedBytes(seed, "rpms"))
	sign := func(data []byte) ([]byte, error) { return signer.Sign(data, fixtureTime) }
	specs := map[string]*rpmbuild.Spec{}
	repoOf := map[string]string{}
	add := func(name, pin string) error {
		if specs[name] != nil {
			return nil
		}
		fp, ok := fixturePackages[name]
		if !ok {
			fp = fixturePackage{repo: "epel", arch: "noarch", evr: "1.0-1.el7"}
		}
		evr := fp.evr
		if pin != "" {
			evr = pin
		}
		spec := &rpmbuild.Spec{Name: name, Arch: fp.arch, Requires: fp.requires}
		if e, rest, ok := strings.Cut(evr, ":"); ok {
			n, err := strconv.ParseUint(e, 10, 32)
			if err != nil {
				return fmt.Errorf("%s: epoch of %q: %w", name, evr, err)
			}
			spec.Epoch, evr = uint32(n), rest
		}
		var found bool
		if spec.Version, spec.Release, found = strings.Cut(evr, "-"); !found {
			return fmt.Errorf("%s: %q is not version-release", name, evr)
		}
		specs[name], repoOf[name] = spec, fp.repo
		return nil
	}
	locals := localNames(list)
	for _, set := range list.Sets {
		for _, p := range set.Packages {
			if _, local := locals[p.Name]; local {
				continue
			}
			if err := add(p.Name, p.Version); err != nil {
				return nil, fmt.Errorf("%s: set %s: %w", list.File, set.Name, err)
			}
		}
	}
	// Dependencies, and the packages the project's own ones require.
	for name := range fixturePackages {
		if err := add(name, ""); err != nil {
			return nil, err
		}
	}
	for i := len(specs); i < s.RPMs; i++ {
		n := fmt.Sprintf("python2-kubernetes-filler-%03d", i)
		if err := add(n, "1.0-1.el7"); err != nil {
			return nil, err
		}
		specs[fillerOf].Requires = append(specs[fillerOf].Requires, n)
	}
	repoDirs := map[string]bool{}
	for _, r := range list.Repos {
		if r.BaseURL != "" {
			repoDirs[r.Name] = true
		}
	}
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Package
	for _, n := range names {
		spec, repo := specs[n], repoOf[n]
		if !repoDirs[repo] {
			return nil, fmt.Errorf("demo: package %s would be served from repository %s, which %s does not list with a baseurl", n, repo, list.File)
		}
		spec.Summary, spec.Description, spec.License = "MetalK8s demo stand-in for "+n, "A package of the offline demo's upstream, named and versioned as the real one.", "Apache-2.0"
		spec.Files = []rpmbuild.File{{Path: "/usr/share/metalk8s-demo/" + n + ".bin", Content: string(randomBytes(rng, s.RPMBytes)), Mode: "0644"}}
		var buf bytes.Buffer
		if err := spec.Build(&buf, rpmbuild.Options{Epoch: fixtureTime, Sign: sign}); err != nil {
			return nil, fmt.Errorf("building %s: %w", n, err)
		}
		if err := fsutil.WriteFile(filepath.Join(dir, repo, "Packages", spec.FileName()), buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		p := Package{Name: n, Version: spec.Version, Release: spec.Release, Arch: spec.Arch, Repo: repo}
		if spec.Epoch != 0 {
			p.Epoch = strconv.FormatUint(uint64(spec.Epoch), 10)
		}
		out = append(out, p)
	}
	for repo := range repoDirs {
		if err := os.MkdirAll(filepath.Join(dir, repo, "Packages"), 0o755); err != nil {
			return nil, err
		}
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

// localNames are the names of the packages packages.yaml builds here
// (local:), which no upstream serves.
func localNames(list *pkglist.List) map[string]string {
	out := map[string]string{}
	for _, lo := range list.Local {
		s, err := rpmbuild.Load(filepath.Join(filepath.Dir(list.File), lo.Spec))
		if err == nil {
			out[s.Name] = lo.Spec
		}
	}
	return out
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
