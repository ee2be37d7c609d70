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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/completeness"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/hostdeps"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmbuild"
	"gopkg.in/yaml.v3"
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
	// Served is what the ISO's installer did with it; nil when the demo
	// failed before.
	Served *Served
	Steps  []StepTime
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
		u, err = StartUpstreams(ctx, updir, Lists{ImagesFile: cfg.ImagesFile, PackagesFile: cfg.PackagesFile}, opt.Seed, opt.Sizes, opt.Log)
		res.Upstreams = u
		return err
	})
	if err != nil {
		return res, err
	}
	lists := filepath.Join(cfg.BuildRoot, "lists")
	var dropped []string
	err = phase("write lists", func() error {
		var err error
		dropped, err = u.WriteLists(lists, cfg.ProjectRoot)
		return err
	})
	if err != nil {
		return res, err
	}
	cfg.ImagesFile = filepath.Join(lists, "images.yaml")
	cfg.PackagesFile = filepath.Join(lists, "packages", "packages.yaml")
	cfg.ImageMirrors = u.ImageMirrors()
	cfg.RepoMirrors = nil // the lists name the local repositories
	cfg.RepoSigningKey = u.KeyFile
	cfg.Steps, cfg.Force = "", ""
	// The fixture is named like the product, so the completeness check
	// runs as in a real build (COMPLETENESS as .env sets it, failing by
	// default) and fails the demo when the ISO root is not a complete
	// product.

	err = phase("build the ISO", func() error { return opt.Build(ctx, b) })
	if err != nil && !errors.Is(err, build.ErrNotBuiltYet) {
		return res, err
	}
	res.Missing = err
	res.MissingParts = append(dropped, missing.parts()...)
	if res.Missing == nil && len(dropped) > 0 {
		res.Missing = fmt.Errorf("%d part(s) %w", len(dropped), build.ErrNotBuiltYet)
	}
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
	if err := phase("read the ISO back", func() error { return readBack(ctx, res) }); err != nil {
		return res, err
	}
	err = phase("serve the ISO with its installer", func() error { return ServeISO(ctx, res, cfg.BuildRoot, opt.Log) })
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
		fmt.Fprintf(w, "  %-36s %-10s %s %9s\n", im.Name, im.Version, im.Digest, oci.HumanBytes(im.Bytes))
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
		fmt.Fprintf(w, "\nthe ISO root is not a complete product:\n%s\n", r.Completeness)
	}
	if s := r.Served; s != nil {
		fmt.Fprintf(w, "\nserved by the installer (as on a Bootstrap node):\n")
		switch {
		case s.Skipped != "":
			fmt.Fprintf(w, "  not served: %s\n", s.Skipped)
		case s.Digest == "":
			fmt.Fprintf(w, "  failed (see the log); node root %s\n", s.Root)
		default:
			fmt.Fprintf(w, "  installer   %s (the ISO's %s)\n", s.Installer, ShippedInstaller)
			fmt.Fprintf(w, "  archive add mounted at %s under --root %s, mount method %s\n", s.MountPoint, s.Root, s.Method)
			fmt.Fprintf(w, "  nginx       %s\n", s.URL)
			fmt.Fprintf(w, "  pulled      %s\n              %s, %d blobs (%s) verified\n", s.Image, s.Digest, s.Blobs, oci.HumanBytes(s.Bytes))
			fmt.Fprintf(w, "  repodata    %s (the ISO's bytes)\n", s.Repomd)
			fmt.Fprintf(w, "  then archive remove: unmounted, nginx stopped; took %s\n", s.Duration.Round(time.Millisecond))
		}
	}
	fmt.Fprintf(w, "\ntimes:\n")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %-60s %8s\n", s.Name, s.Duration.Round(time.Millisecond))
	}
}

// WriteLists writes images.yaml and packages/packages.yaml under dir, in the
// formats of images/images.yaml and packages/packages.yaml and derived
// from the real lists the upstreams were made from: the images with the
// digests the local registry serves, the repositories with their base
// URLs and keys on the local nginx and nothing else changed. The local
// package specs are copied beside packages.yaml, as the list names them
// relative to itself. A local package that ships a CLI the project does
// not have yet (cmd/<name>) cannot be built: it is left out of the list,
// and named in what WriteLists returns, so that the rest of the product
// is built and checked.
func (u *Upstreams) WriteLists(dir, projectRoot string) (missing []string, err error) {
	var b strings.Builder
	b.WriteString("# Generated by the MetalK8s demo from " + u.lists.ImagesFile + ":\n# the same images, as its local registry serves them.\n")
	for _, im := range u.Images {
		fmt.Fprintf(&b, "- name: %s\n  version: %q\n  source: %s\n  digest: %s\n", im.Name, im.Version, im.Source, im.Digest)
	}
	if err := fsutil.WriteFile(filepath.Join(dir, "images.yaml"), []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	// The packages directory whole: the local specs and their sources.
	if err := os.RemoveAll(filepath.Join(dir, "packages")); err != nil {
		return nil, err
	}
	if err := os.CopyFS(filepath.Join(dir, "packages"), os.DirFS(filepath.Dir(u.lists.PackagesFile))); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(u.lists.PackagesFile)
	if err != nil {
		return nil, err
	}
	list, err := pkglist.Parse(u.lists.PackagesFile, data)
	if err != nil {
		return nil, err
	}
	clis, err := gobin.Discover(projectRoot)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, c := range clis {
		have[c] = true
	}
	drop := map[string]bool{} // local spec paths and package names
	for _, lo := range list.Local {
		spec, err := rpmbuild.Load(filepath.Join(filepath.Dir(list.File), lo.Spec))
		if err != nil {
			return nil, err
		}
		for _, f := range spec.Files {
			if f.Binary != "" && !have[f.Binary] && !drop[lo.Spec] {
				drop[lo.Spec], drop[spec.Name] = true, true
				missing = append(missing, fmt.Sprintf("%s: the local package of %s ships cmd/%s, which is %v: left out of the demo's packages.yaml",
					spec.Name, lo.Spec, f.Binary, build.ErrNotBuiltYet))
			}
		}
	}
	out, err := derivePackages(data, u.lists.PackagesFile, u.RepoURL, "RPM-GPG-KEY-demo", drop)
	if err != nil {
		return nil, err
	}
	// Beside its specs: the copy's own is replaced.
	if err := fsutil.WriteFile(filepath.Join(dir, "packages", "packages.yaml"), out, 0o644); err != nil {
		return nil, err
	}
	return missing, nil
}

// derivePackages rewrites packages.yaml (data, read from file): each
// repository with a baseurl gets repoURL/<name>/ and the one key
// repoURL/key; the local packages and set entries named in drop are
// removed. Comments and everything else stay as they are.
func derivePackages(data []byte, file, repoURL, key string, drop map[string]bool) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a mapping", file)
	}
	get := func(m *yaml.Node, k string) *yaml.Node {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == k {
				return m.Content[i+1]
			}
		}
		return nil
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	root := doc.Content[0]
	if repos := get(root, "repositories"); repos != nil {
		for _, r := range repos.Content {
			name, base := get(r, "name"), get(r, "baseurl")
			if name == nil || base == nil {
				continue
			}
			*base = *str(repoURL + name.Value + "/")
			if keys := get(r, "gpgkeys"); keys != nil {
				*keys = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Content: []*yaml.Node{str(repoURL + key)}}
			}
		}
	}
	if local := get(root, "local"); local != nil {
		kept := local.Content[:0]
		for _, lo := range local.Content {
			if spec := get(lo, "spec"); spec == nil || !drop[spec.Value] {
				kept = append(kept, lo)
			}
		}
		local.Content = kept
	}
	if sets := get(root, "sets"); sets != nil {
		for _, set := range sets.Content {
			pkgs := get(set, "packages")
			if pkgs == nil {
				continue
			}
			kept := pkgs.Content[:0]
			for _, p := range pkgs.Content {
				name, _, _ := strings.Cut(p.Value, " ")
				if !drop[name] {
					kept = append(kept, p)
				}
			}
			pkgs.Content = kept
		}
	}
	doc.HeadComment = "Generated by the MetalK8s demo from " + file + ": the same\nrepositories and sets, served by its local nginx."
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ImageMirrors sends the lists' registries to the local registry.
func (u *Upstreams) ImageMirrors() map[string]string {
	m := map[string]string{}
	for _, im := range u.Images {
		host, _, _ := cutHost(im.Source)
		m[host] = u.RegistryHost
	}
	return m
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
