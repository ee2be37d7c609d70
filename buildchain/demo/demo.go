// Package demo runs the whole buildchain offline: it starts local
// stand-ins for the upstream registries and yum repositories on
// 127.0.0.1, points the image and package lists and the mirrors at them,
// builds the ISO through the iso target's own code, reads the ISO back and
// stops what it started. `go run mage.go demo` runs it.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/completeness"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/hostdeps"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

// Options configure a demo run.
type Options struct {
	// Cfg is the project's configuration; the demo replaces its lists,
	// mirrors, signing key and (when BuildRoot is set) build root.
	Cfg *config.Config
	// BuildRoot defaults to Cfg.ProjectRoot/dist/demo, so the real
	// build root is left alone.
	BuildRoot string
	Seed      uint64
	Sizes     Sizes
	// Build is the target that writes the ISO: targets.Iso.
	Build func(context.Context, *build.Session) error
	// InstallDeps installs Packages with apt-get when a program is missing.
	InstallDeps bool
	Log         io.Writer
}

// Result is what the demo built and read back.
type Result struct {
	ISO     string
	ISOSize int64
	Product string // product.txt, read from the ISO
	Images  []ISOImage
	Repos   []ISORepo
	Missing error // the parts the iso target reported not built yet
	// MissingParts are the iso target's lines naming each missing part.
	MissingParts []string
	// Completeness is what the completeness check found, "" when the ISO
	// root is complete (or was not checked).
	Completeness string
	Upstreams    *Upstreams
	Steps        []StepTime
}

// ISOImage is one image directory of the ISO.
type ISOImage struct {
	Name, Version, Digest string
	MediaType             string
	Bytes                 int64 // manifests and blobs
}

// ISORepo is one package repository of the ISO.
type ISORepo struct {
	Name     string
	Packages int
	Bytes    int64
}

// StepTime is one demo phase and its wall time.
type StepTime struct {
	Name     string
	Duration time.Duration
}

// Run runs the demo. The upstream servers are always stopped before it
// returns, also on error and on SIGINT/SIGTERM, which cancel ctx.
func Run(ctx context.Context, opt Options) (res *Result, err error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	if opt.Sizes == (Sizes{}) {
		opt.Sizes = DefaultSizes()
	}
	res = &Result{}
	phase := func(name string, fn func() error) error {
		start := time.Now()
		err := fn()
		res.Steps = append(res.Steps, StepTime{name, time.Since(start)})
		return err
	}
	if opt.InstallDeps {
		if _, err := LookPrograms("docker-registry", "nginx"); err != nil {
			if err := phase("install Debian packages", func() error { return hostdeps.Ensure(ctx, Packages, opt.Log) }); err != nil {
				return res, err
			}
		}
	}
	cfg := *opt.Cfg
	cfg.BuildRoot = opt.BuildRoot
	if cfg.BuildRoot == "" {
		cfg.BuildRoot = filepath.Join(cfg.ProjectRoot, "dist", "demo")
	}
	if err := os.MkdirAll(cfg.BuildRoot, 0o755); err != nil {
		return res, err
	}
	// The iso target names each missing part in its log only; the
	// summary repeats them.
	missing := &missingLines{w: opt.Log}
	// The session first: it checks, claims and locks the build root
	// before anything of the demo is written into it.
	b, err := build.OpenConfig(&cfg, missing)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := b.Close(); err == nil {
			err = cerr
		}
	}()
	updir := filepath.Join(cfg.BuildRoot, "upstream")
	// A run killed hard left its data; its servers died with it.
	if err := os.RemoveAll(updir); err != nil {
		return res, err
	}
	var u *Upstreams
	defer func() {
		if u != nil {
			if serr := u.Stop(); err == nil && serr != nil {
				err = fmt.Errorf("demo: stopping the upstreams: %w", serr)
			}
			fmt.Fprintln(opt.Log, "demo: upstream servers stopped")
		}
	}()
	err = phase("start upstreams", func() error {
		var err error
		u, err = StartUpstreams(ctx, updir, opt.Seed, opt.Sizes, opt.Log)
		res.Upstreams = u
		return err
	})
	if err != nil {
		return res, err
	}
	lists := filepath.Join(cfg.BuildRoot, "lists")
	if err := phase("write lists", func() error { return u.WriteLists(lists) }); err != nil {
		return res, err
	}
	cfg.ImagesFile = filepath.Join(lists, "images.yaml")
	cfg.PackagesFile = filepath.Join(lists, "packages.yaml")
	cfg.ImageMirrors = u.ImageMirrors()
	cfg.RepoMirrors = u.RepoMirrors()
	cfg.RepoSigningKey = u.KeyFile
	cfg.Steps, cfg.Force = "", ""
	// The stand-in fixture is no product: its images are referenced by no
	// state and the Salt states name packages it does not hold. The check
	// still runs, and its findings are part of the summary.
	cfg.CompletenessReportOnly = true

	err = phase("build the ISO", func() error { return opt.Build(ctx, b) })
	if err != nil && !errors.Is(err, build.ErrNotBuiltYet) {
		return res, err
	}
	res.Missing = err
	res.MissingParts = missing.parts()
	if data, err := os.ReadFile(filepath.Join(cfg.BuildRoot, "completeness.json")); err == nil {
		var rep completeness.Report
		if err := json.Unmarshal(data, &rep); err != nil {
			return res, fmt.Errorf("completeness.json: %w", err)
		}
		if err := rep.Err(); err != nil {
			res.Completeness = err.Error()
		}
	}
	for _, r := range b.Engine.Results() {
		res.Steps = append(res.Steps, StepTime{"  " + r.Step + " (" + string(r.Status) + ")", r.Duration})
	}
	res.ISO = b.IsoPath()
	err = phase("read the ISO back", func() error { return readBack(ctx, res) })
	return res, err
}

// readBack opens the ISO with the project's own reader, without mounting.
func readBack(ctx context.Context, res *Result) error {
	f, err := os.Open(res.ISO)
	if err != nil {
		return fmt.Errorf("demo: the ISO was not written: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	res.ISOSize = st.Size()
	im, err := iso.Open(f, st.Size())
	if err != nil {
		return fmt.Errorf("demo: reading %s: %w", res.ISO, err)
	}
	fsys := im.FS()
	p, err := fs.ReadFile(fsys, "product.txt")
	if err != nil {
		return fmt.Errorf("demo: %s: product.txt: %w", res.ISO, err)
	}
	res.Product = string(p)
	if res.Images, err = ReadImages(ctx, fsys); err != nil {
		return fmt.Errorf("demo: %s: %w", res.ISO, err)
	}
	res.Repos, err = readRepos(fsys)
	return err
}

// ReadImages lists the image directories under images/ of fsys, each read
// and checked by dirlayout, every blob against its digest.
func ReadImages(ctx context.Context, fsys fs.FS) ([]ISOImage, error) {
	var out []ISOImage
	err := dirlayout.Walk(ctx, fsys, "images", dirlayout.Options{VerifyBlobs: true}, func(dir *dirlayout.Dir) error {
		p := dir.Path
		img := ISOImage{Name: path.Dir(strings.TrimPrefix(p, "images/")), Version: path.Base(p), MediaType: string(dir.MediaType)}
		if len(dir.Manifests) > 0 {
			img.Digest = dir.Manifests[0].Digest
		}
		for _, m := range dir.Manifests {
			img.Bytes += m.Size
		}
		for _, n := range dir.Blobs {
			img.Bytes += n
		}
		out = append(out, img)
		return nil
	})
	return out, err
}

func readRepos(fsys fs.FS) ([]ISORepo, error) {
	entries, err := fs.ReadDir(fsys, "packages/redhat")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []ISORepo
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		r := ISORepo{Name: e.Name()}
		err := fs.WalkDir(fsys, "packages/redhat/"+e.Name(), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r.Bytes += fi.Size()
			if strings.HasSuffix(p, ".rpm") {
				r.Packages++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Print writes the demo's summary: where the ISO is, what it holds and
// what each phase took.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== MetalK8s demo ==\nISO: %s (%s)\n", r.ISO, oci.HumanBytes(r.ISOSize))
	if r.Product != "" {
		fmt.Fprintf(w, "\nproduct.txt (read from the ISO, not mounted):\n")
		for _, l := range strings.Split(strings.TrimSpace(r.Product), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintf(w, "\nimages on the ISO (%d):\n", len(r.Images))
	for _, im := range r.Images {
		fmt.Fprintf(w, "  %-20s %-10s %s %9s\n", im.Name, im.Version, im.Digest, oci.HumanBytes(im.Bytes))
	}
	fmt.Fprintf(w, "\nrepositories on the ISO (%d):\n", len(r.Repos))
	for _, rp := range r.Repos {
		fmt.Fprintf(w, "  %-20s %3d packages %9s\n", rp.Name, rp.Packages, oci.HumanBytes(rp.Bytes))
	}
	if r.Missing != nil {
		fmt.Fprintf(w, "\nthe ISO is INCOMPLETE: %v, missing from it:\n", r.Missing)
		for _, m := range r.MissingParts {
			fmt.Fprintf(w, "  - %s\n", m)
		}
	}
	if r.Completeness != "" {
		fmt.Fprintf(w, "\nthe ISO root is not a complete product (COMPLETENESS=report):\n%s\n", r.Completeness)
	}
	fmt.Fprintf(w, "\ntimes:\n")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %-60s %8s\n", s.Name, s.Duration.Round(time.Millisecond))
	}
}

// WriteLists writes images.yaml and packages.yaml under dir, in the
// formats of images/images.yaml and packages/packages.yaml, pinned to
// what the upstreams serve, and the spec of one package built here.
func (u *Upstreams) WriteLists(dir string) error {
	var b strings.Builder
	b.WriteString("# Generated by the MetalK8s demo: the images its local registry serves.\n")
	for _, im := range u.Images {
		fmt.Fprintf(&b, "- name: %s\n  version: %q\n  source: %s\n  digest: %s\n", im.Name, im.Version, im.Source, im.Digest)
	}
	if err := fsutil.WriteFile(filepath.Join(dir, "images.yaml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	b.Reset()
	key := u.RepoURL + "RPM-GPG-KEY-demo"
	fmt.Fprintf(&b, `# Generated by the MetalK8s demo: the repositories its local nginx serves.
# The base URLs are placeholders that REPO_MIRRORS points at 127.0.0.1.
repositories:
  - name: demo-base
    kind: external
    baseurl: %[1]s
    gpgkeys: [%[3]s]
  - name: demo-upstream
    kind: shipped
    baseurl: %[2]s
    gpgkeys: [%[3]s]
  - name: metalk8s
    kind: shipped
sets:
  - name: demo
    packages:
`, placeholderBase, placeholderUpstream, key)
	var names []string
	for _, p := range u.Packages {
		if p.Repo == "upstream" && strings.HasPrefix(p.Name, "demo-app-") {
			names = append(names, fmt.Sprintf("%s = %s-%s", p.Name, p.Version, p.Release))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "      - %s\n", n)
	}
	b.WriteString("      - demo-hello\nlocal:\n  - spec: demo-hello.yaml\n    repo: metalk8s\n")
	if err := fsutil.WriteFile(filepath.Join(dir, "packages.yaml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	spec := "name: demo-hello\nversion: \"1.0\"\nrelease: \"1\"\narch: noarch\nsummary: a package built by the buildchain\ndescription: Built from this spec by buildchain/rpm/rpmbuild, as the project's own RPMs are.\nlicense: Apache-2.0\nfiles:\n  - path: /etc/metalk8s/demo-hello\n    content: hello from the MetalK8s demo\n    mode: \"0644\"\n"
	return fsutil.WriteFile(filepath.Join(dir, "demo-hello.yaml"), []byte(spec), 0o644)
}

const (
	placeholderBase     = "https://demo-base.invalid/el7/x86_64/"
	placeholderUpstream = "https://demo-upstream.invalid/el7/x86_64/"
)

// ImageMirrors sends the lists' registries to the local registry.
func (u *Upstreams) ImageMirrors() map[string]string {
	m := map[string]string{}
	for _, im := range u.Images {
		host, _, _ := cutHost(im.Source)
		m[host] = u.RegistryHost
	}
	return m
}

// RepoMirrors sends the lists' repositories to the local nginx.
func (u *Upstreams) RepoMirrors() map[string]string {
	return map[string]string{"demo-base": u.RepoURL + "base/", "demo-upstream": u.RepoURL + "upstream/"}
}

// missingLines passes a build log through and keeps the items of its
// "missing from this build:" list.
type missingLines struct {
	w       io.Writer
	mu      sync.Mutex
	partial []byte
	inList  bool
	items   []string
}

func (m *missingLines) Write(p []byte) (int, error) {
	m.mu.Lock()
	m.partial = append(m.partial, p...)
	for {
		i := bytes.IndexByte(m.partial, '\n')
		if i < 0 {
			break
		}
		line := string(m.partial[:i])
		m.partial = m.partial[i+1:]
		switch {
		case line == "missing from this build:":
			m.inList, m.items = true, nil
		case m.inList && strings.HasPrefix(line, "  - "):
			m.items = append(m.items, strings.TrimPrefix(line, "  - "))
		default:
			m.inList = false
		}
	}
	m.mu.Unlock()
	return m.w.Write(p)
}

func (m *missingLines) parts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.items...)
}
