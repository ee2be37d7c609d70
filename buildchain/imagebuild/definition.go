// Package imagebuild builds container images from a small YAML definition,
// without Docker: a base (scratch, or an image pinned by digest), layers of
// files from the project tree or of the project's own static binaries, and
// an image config. Images are assembled with go-containerregistry's mutate
// package, and every byte that goes into them (tar headers, gzip header,
// config timestamps, history) derives from the definition, the input files
// and SOURCE_DATE_EPOCH, so rebuilding gives the same manifest digest.
//
// A definition lives at images/<name>/image.yaml:
//
//	name: metalk8s-utils
//	version: product            # or a literal tag such as 1.2.3
//	base: scratch               # or {source: docker.io/library/alpine, digest: sha256:...}
//	platform: linux/amd64       # the default
//	layers:
//	  - dirs: [/etc/metalk8s]   # or {path: /var/lib/x, mode: 0700}; 0755 by default
//	    files:
//	      - {src: "build:*", dst: /usr/local/bin/}            # every CLI of ./cmd, mode 0755
//	      - {src: "build:mkiso", dst: /usr/bin/mkiso}          # one CLI
//	      - {src: salt/top.sls, dst: /srv/salt/, mode: 0644}  # a project file
//	config:
//	  entrypoint: [/usr/local/bin/mkiso]
//	  cmd: [--help]
//	  env: [PATH=/usr/local/bin:/usr/bin]
//	  labels: {org.opencontainers.image.version: "{{version}}"}
//	  workdir: /
//	  user: "0:0"
//
// The parser uses the yaml.v3 Node API so that every error names file:line,
// and it rejects unknown fields, anchors and aliases: a typo must never
// silently produce a different image.
package imagebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// ProductVersion is the version value that stands for the product version
// the caller passes to Build.
const ProductVersion = "product"

// VersionPlaceholder in a label or env value is replaced by the image's
// resolved version, so that labels can follow the product version.
const VersionPlaceholder = "{{version}}"

// BinaryPrefix starts a file source that names a static binary of the
// project's CLIs: "build:NAME" is ./cmd/NAME, "build:*" is all of them.
const BinaryPrefix = "build:"

// AllBinaries is the file source meaning every CLI, in name order.
const AllBinaries = BinaryPrefix + "*"

// Definition is a parsed and validated image definition.
type Definition struct {
	Path     string      // the file it was read from, for messages
	Name     string      // image name, e.g. metalk8s-utils
	Version  string      // a literal tag, or ProductVersion
	Base     *Base       // nil means scratch
	Platform v1.Platform // os/architecture[/variant]
	Layers   []Layer
	Config   Config
	Line     int // line of the document
}

// Base is a base image pinned by digest.
type Base struct {
	Source string  // registry/repository
	Digest v1.Hash // manifest or index digest
	Line   int
}

// Layer is one image layer.
type Layer struct {
	Files []File
	Dirs  []Dir
	Line  int
}

// File puts one file (or, with AllBinaries, every CLI) into a layer.
type File struct {
	// Src is a path relative to the project root (slash-separated, clean),
	// "build:NAME" or AllBinaries.
	Src string
	// Dst is an absolute clean path, or a directory ending in "/" into
	// which the source keeps its base name.
	Dst  string
	Mode fs.FileMode
	Line int
}

// Dir creates a directory in a layer (parents of files are created anyway,
// with mode 0755; listing a directory sets its mode or makes an empty one).
type Dir struct {
	Path string
	Mode fs.FileMode
	Line int
}

// Config is what the definition sets in the image config. Fields left
// unset keep the base image's values.
type Config struct {
	// Entrypoint and Cmd are exec-form argument lists. nil leaves the base
	// value; an empty non-nil list clears it.
	Entrypoint []string
	Cmd        []string
	Env        []string          // KEY=VALUE; replaces a base entry with the same key
	Labels     map[string]string // merged over the base labels
	WorkingDir string
	User       string
}

// Binary reports the CLI a "build:NAME" source names ("*" for all).
func (f File) Binary() (name string, ok bool) {
	if !strings.HasPrefix(f.Src, BinaryPrefix) {
		return "", false
	}
	return strings.TrimPrefix(f.Src, BinaryPrefix), true
}

// Target returns where a source whose base name is base lands.
func (f File) Target(base string) string {
	if strings.HasSuffix(f.Dst, "/") {
		return f.Dst + base
	}
	return f.Dst
}

// Error is a definition error at a position (Line 0: the whole file).
type Error = yamlstrict.Error

// Load reads and validates the definition at path.
func Load(path string) (*Definition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image definition: %w", err)
	}
	return Parse(path, data)
}

// LoadDir loads every images/<name>/image.yaml under dir, sorted by name.
// Each definition's name must match its directory, so that the file a
// user edits is obvious from the image name.
func LoadDir(dir string) ([]*Definition, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*", "image.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	defs := make([]*Definition, 0, len(paths))
	for _, p := range paths {
		d, err := Load(p)
		if err != nil {
			return nil, err
		}
		if want := filepath.Base(filepath.Dir(p)); d.Name != want {
			return nil, yamlstrict.At(p, d.Line, "name %q does not match its directory %q", d.Name, want)
		}
		defs = append(defs, d)
	}
	return defs, nil
}

// Inputs returns the absolute paths of the files the definition reads from
// the project tree, the definition itself first, for up-to-date stamps.
// Binaries are build outputs, not listed: the caller stamps the step that
// builds them.
func (d *Definition) Inputs(projectRoot string) []string {
	seen := map[string]bool{}
	in := []string{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			in = append(in, p)
		}
	}
	if abs, err := filepath.Abs(d.Path); err == nil {
		add(abs)
	} else {
		add(d.Path)
	}
	for _, l := range d.Layers {
		for _, f := range l.Files {
			if _, ok := f.Binary(); !ok {
				add(filepath.Join(projectRoot, filepath.FromSlash(f.Src)))
			}
		}
	}
	return in
}

// Binaries returns the CLIs the definition needs, sorted, and whether it
// needs all of them (AllBinaries).
func (d *Definition) Binaries() (names []string, all bool) {
	set := map[string]bool{}
	for _, l := range d.Layers {
		for _, f := range l.Files {
			if b, ok := f.Binary(); ok {
				if b == "*" {
					all = true
				} else {
					set[b] = true
				}
			}
		}
	}
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, all
}

// ResolveVersion returns the image version: the literal, or product when
// the definition says ProductVersion.
func (d *Definition) ResolveVersion(product string) (string, error) {
	if d.Version != ProductVersion {
		return d.Version, nil
	}
	if !distref.ValidTag(product) {
		return "", fmt.Errorf("%s: image %s takes the product version, but %q is not a valid image tag", d.Path, d.Name, product)
	}
	return product, nil
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	cliRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	platformRE = regexp.MustCompile(`^[a-z0-9_]+$`)
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRE    = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:[._/][a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$`)
	userRE     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)
)

// Docker reserves these label namespaces for itself.
var reservedLabelPrefixes = []string{"com.docker.", "io.docker.", "org.dockerproject."}

// parser carries the file name into every error.
type parser struct{ file string }

func (p *parser) errf(n *yaml.Node, format string, a ...any) error {
	return yamlstrict.Errorf(p.file, n, format, a...)
}

// Parse validates a definition read from file (used in messages only).
func Parse(file string, data []byte) (*Definition, error) {
	p := &parser{file: file}
	root, err := yamlstrict.Decode(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, p.errf(nil, "empty image definition")
	}
	return p.definition(root)
}

// fields walks a mapping, rejecting duplicate and unknown keys.
func (p *parser) fields(n *yaml.Node, what string, allowed []string, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, "%s must be a mapping with keys %s", what, strings.Join(allowed, ", "))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return p.errf(k, "%s: keys must be plain strings", what)
		}
		if seen[k.Value] {
			return p.errf(k, "%s: duplicate key %q", what, k.Value)
		}
		seen[k.Value] = true
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		if !known {
			return p.errf(k, "%s: unknown field %q (allowed: %s)", what, k.Value, strings.Join(allowed, ", "))
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

// str returns a non-null scalar's text. A number or boolean is accepted as
// written ("1.10" stays "1.10"), since YAML's typing is not the user's intent.
func (p *parser) str(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n, "%s must be a string", what)
	}
	if n.Tag == "!!binary" {
		return "", p.errf(n, "%s must be a string, not binary data", what)
	}
	if strings.ContainsRune(n.Value, 0) {
		return "", p.errf(n, "%s contains a NUL character", what)
	}
	return n.Value, nil
}

func (p *parser) strList(n *yaml.Node, what string) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "%s must be a list of strings (exec form)", what)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := p.str(c, what+" entry")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) definition(n *yaml.Node) (*Definition, error) {
	d := &Definition{Path: p.file, Line: n.Line}
	var haveName, haveVersion, haveBase bool
	err := p.fields(n, "image definition", []string{"name", "version", "base", "platform", "layers", "config"}, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			haveName = true
			if d.Name, err = p.str(v, "name"); err != nil {
				return err
			}
			if len(d.Name) > 128 || !nameRE.MatchString(d.Name) {
				return p.errf(v, "name %q is not a valid image name (lowercase letters, digits, and . _ - between them)", d.Name)
			}
		case "version":
			haveVersion = true
			if d.Version, err = p.str(v, "version"); err != nil {
				return err
			}
			if d.Version != ProductVersion && !distref.ValidTag(d.Version) {
				return p.errf(v, "version %q is neither %q nor a valid image tag", d.Version, ProductVersion)
			}
		case "base":
			haveBase = true
			d.Base, err = p.base(v)
		case "platform":
			var s string
			if s, err = p.str(v, "platform"); err != nil {
				return err
			}
			d.Platform, err = p.platform(v, s)
		case "layers":
			if v.Kind != yaml.SequenceNode {
				return p.errf(v, "layers must be a list")
			}
			for _, c := range v.Content {
				l, err := p.layer(c)
				if err != nil {
					return err
				}
				d.Layers = append(d.Layers, l)
			}
		case "config":
			d.Config, err = p.config(v)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case !haveName:
		return nil, p.errf(n, "missing field name")
	case !haveVersion:
		return nil, p.errf(n, "missing field version (a tag, or %q for the product version)", ProductVersion)
	case !haveBase:
		return nil, p.errf(n, "missing field base (scratch, or {source, digest})")
	}
	if d.Platform.OS == "" {
		// The platform of the MetalK8s nodes.
		d.Platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	if d.Base == nil && len(d.Layers) == 0 {
		return nil, p.errf(n, "a scratch image needs at least one layer")
	}
	return d, nil
}

func (p *parser) base(n *yaml.Node) (*Base, error) {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "scratch" {
			return nil, nil
		}
		return nil, p.errf(n, "base must be scratch or {source: registry/repository, digest: sha256:...}, not %q", n.Value)
	}
	b := &Base{Line: n.Line}
	var digest string
	err := p.fields(n, "base", []string{"source", "digest"}, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "source":
			if b.Source, err = p.str(v, "base source"); err != nil {
				return err
			}
			if err := checkSource(b.Source); err != nil {
				return p.errf(v, "base source %q: %v", b.Source, err)
			}
		case "digest":
			if digest, err = p.str(v, "base digest"); err != nil {
				return err
			}
			if !distref.ValidDigest(digest) {
				return p.errf(v, "base digest %q is not sha256: followed by 64 lowercase hex digits", digest)
			}
			if b.Digest, err = v1.NewHash(digest); err != nil {
				return p.errf(v, "base digest: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if b.Source == "" || digest == "" {
		return nil, p.errf(n, "base needs both source and digest: a base is always pinned")
	}
	return b, nil
}

// checkSource accepts registry/repository with an explicit registry host,
// as images.yaml does: an implicit docker.io would hide where bytes come from.
func checkSource(s string) error {
	host, repo, ok := strings.Cut(s, "/")
	if !ok || repo == "" {
		return errors.New("want registry/repository, e.g. docker.io/library/alpine")
	}
	if !distref.ValidHost(host) || !(strings.ContainsAny(host, ".:[") || host == "localhost") {
		return fmt.Errorf("%q is not a registry host", host)
	}
	if len(repo) > distref.MaxNameLength {
		return errors.New("repository name longer than 255 characters")
	}
	for _, part := range strings.Split(repo, "/") {
		if !distref.ValidComponent(part) {
			return fmt.Errorf("repository component %q is invalid (lowercase letters, digits, separators)", part)
		}
	}
	return nil
}

func (p *parser) platform(n *yaml.Node, s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, p.errf(n, "platform %q: want os/architecture[/variant], e.g. linux/amd64", s)
	}
	for _, part := range parts {
		if !platformRE.MatchString(part) {
			return v1.Platform{}, p.errf(n, "platform %q: %q is not a valid os, architecture or variant", s, part)
		}
	}
	pl := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		pl.Variant = parts[2]
	}
	return pl, nil
}

func (p *parser) layer(n *yaml.Node) (Layer, error) {
	l := Layer{Line: n.Line}
	err := p.fields(n, "layer", []string{"files", "dirs"}, func(key string, k, v *yaml.Node) error {
		if v.Kind != yaml.SequenceNode {
			return p.errf(v, "layer %s must be a list", key)
		}
		for _, c := range v.Content {
			switch key {
			case "files":
				f, err := p.fileEntry(c)
				if err != nil {
					return err
				}
				l.Files = append(l.Files, f)
			case "dirs":
				d, err := p.dir(c)
				if err != nil {
					return err
				}
				l.Dirs = append(l.Dirs, d)
			}
		}
		return nil
	})
	if err != nil {
		return l, err
	}
	if len(l.Files) == 0 && len(l.Dirs) == 0 {
		return l, p.errf(n, "empty layer: give it files or dirs")
	}
	// Entries whose target is known now are checked now, so a typo shows
	// up at load time with its line; "build:*" is checked again at build
	// time, once the set of CLIs is known.
	var ents []entry
	for _, f := range l.Files {
		if b, ok := f.Binary(); ok && b == "*" {
			continue
		}
		ents = append(ents, entry{path: f.Target(path.Base(f.Src)), line: f.Line})
	}
	for _, d := range l.Dirs {
		ents = append(ents, entry{path: d.Path, dir: true, line: d.Line})
	}
	if err := checkEntries(ents); err != nil {
		return l, yamlstrict.At(p.file, err.line, "%s", err.msg)
	}
	return l, nil
}

func (p *parser) fileEntry(n *yaml.Node) (File, error) {
	f := File{Line: n.Line}
	var haveMode bool
	err := p.fields(n, "file", []string{"src", "dst", "mode"}, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "src":
			if f.Src, err = p.str(v, "src"); err != nil {
				return err
			}
			if b, ok := f.Binary(); ok {
				if b != "*" && !cliRE.MatchString(b) {
					return p.errf(v, "src %q: %q is not a CLI name (a directory of ./cmd)", f.Src, b)
				}
			} else if err := checkRel(f.Src); err != nil {
				return p.errf(v, "src %q: %v", f.Src, err)
			}
		case "dst":
			if f.Dst, err = p.str(v, "dst"); err != nil {
				return err
			}
			dst := f.Dst
			if dst != "/" {
				dst = strings.TrimSuffix(dst, "/")
			}
			if err := checkAbs(dst); err != nil {
				return p.errf(v, "dst %q: %v", f.Dst, err)
			}
		case "mode":
			haveMode = true
			f.Mode, err = p.mode(v, 0o400)
		}
		return err
	})
	if err != nil {
		return f, err
	}
	if f.Src == "" || f.Dst == "" {
		return f, p.errf(n, "a file needs src and dst")
	}
	b, isBin := f.Binary()
	if b == "*" && !strings.HasSuffix(f.Dst, "/") {
		return f, p.errf(n, "src %q puts every CLI into a directory: dst must end with /", AllBinaries)
	}
	if !haveMode {
		// Binaries are executables; data files are not.
		f.Mode = 0o644
		if isBin {
			f.Mode = 0o755
		}
	}
	return f, nil
}

func (p *parser) dir(n *yaml.Node) (Dir, error) {
	d := Dir{Mode: fs.ModeDir | 0o755, Line: n.Line}
	check := func(v *yaml.Node) error {
		var err error
		if d.Path, err = p.str(v, "dir"); err != nil {
			return err
		}
		if err := checkAbs(d.Path); err != nil {
			return p.errf(v, "dir %q: %v", d.Path, err)
		}
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return d, check(n)
	}
	err := p.fields(n, "dir", []string{"path", "mode"}, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "path":
			err = check(v)
		case "mode":
			d.Mode, err = p.mode(v, 0o500)
			d.Mode |= fs.ModeDir
		}
		return err
	})
	if err == nil && d.Path == "" {
		err = p.errf(n, "a dir needs a path")
	}
	d.Mode |= fs.ModeDir
	return d, err
}

// mode parses an octal permission such as 0755 or 0o755. A leading zero
// is required: 755 read as decimal would be a surprising 01363. Special
// bits (setuid, setgid, sticky) are refused: the images built here hold
// tools and data, and such bits there would be a mistake or worse. need
// are the owner bits the entry cannot work without.
func (p *parser) mode(n *yaml.Node, need fs.FileMode) (fs.FileMode, error) {
	s, err := p.str(n, "mode")
	if err != nil {
		return 0, err
	}
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0")
	if !strings.HasPrefix(s, "0") || len(digits) == 0 || len(digits) > 4 {
		return 0, p.errf(n, "mode %q: write it in octal with a leading 0, e.g. 0755", s)
	}
	v, err := strconv.ParseUint(digits, 8, 32)
	if err != nil {
		return 0, p.errf(n, "mode %q is not octal", s)
	}
	if v > 0o777 {
		return 0, p.errf(n, "mode %q: setuid, setgid and sticky bits are not allowed", s)
	}
	m := fs.FileMode(v)
	if m&need != need {
		return 0, p.errf(n, "mode %q: the owner needs at least %#o", s, uint32(need))
	}
	return m, nil
}

func (p *parser) config(n *yaml.Node) (Config, error) {
	var c Config
	envKeys := map[string]bool{}
	err := p.fields(n, "config", []string{"entrypoint", "cmd", "env", "labels", "workdir", "user"}, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "entrypoint":
			c.Entrypoint, err = p.strList(v, "entrypoint")
		case "cmd":
			c.Cmd, err = p.strList(v, "cmd")
		case "env":
			if v.Kind != yaml.SequenceNode {
				return p.errf(v, "env must be a list of KEY=VALUE")
			}
			c.Env = []string{}
			for _, e := range v.Content {
				s, err := p.str(e, "env entry")
				if err != nil {
					return err
				}
				key, val, ok := strings.Cut(s, "=")
				if !ok || !envKeyRE.MatchString(key) {
					return p.errf(e, "env entry %q: want KEY=VALUE with KEY made of letters, digits and _", s)
				}
				if envKeys[key] {
					return p.errf(e, "env: %s is set twice", key)
				}
				envKeys[key] = true
				if err := checkPlaceholders(val); err != nil {
					return p.errf(e, "env %s: %v", key, err)
				}
				c.Env = append(c.Env, s)
			}
		case "labels":
			c.Labels = map[string]string{}
			return p.labels(v, c.Labels)
		case "workdir":
			if c.WorkingDir, err = p.str(v, "workdir"); err != nil {
				return err
			}
			if c.WorkingDir != "/" {
				if err := checkAbs(c.WorkingDir); err != nil {
					return p.errf(v, "workdir %q: %v", c.WorkingDir, err)
				}
			}
		case "user":
			if c.User, err = p.str(v, "user"); err != nil {
				return err
			}
			if !userRE.MatchString(c.User) {
				return p.errf(v, "user %q: want NAME, UID, or USER:GROUP", c.User)
			}
		}
		return err
	})
	return c, err
}

func (p *parser) labels(n *yaml.Node, out map[string]string) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, "labels must be a mapping of key: value")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, err := p.str(k, "label key")
		if err != nil {
			return err
		}
		if len(key) > 255 || !labelRE.MatchString(key) {
			return p.errf(k, "label key %q: want lowercase reverse-DNS notation, e.g. org.opencontainers.image.title", key)
		}
		for _, r := range reservedLabelPrefixes {
			if strings.HasPrefix(key, r) {
				return p.errf(k, "label key %q: the %s namespace is reserved by Docker", key, strings.TrimSuffix(r, "."))
			}
		}
		if _, dup := out[key]; dup {
			return p.errf(k, "label %q is set twice", key)
		}
		val, err := p.str(v, "label "+key)
		if err != nil {
			return err
		}
		if err := checkPlaceholders(val); err != nil {
			return p.errf(v, "label %s: %v", key, err)
		}
		out[key] = val
	}
	return nil
}

// checkPlaceholders allows only VersionPlaceholder: an unknown {{...}}
// would otherwise end up verbatim in the image.
func checkPlaceholders(s string) error {
	if strings.Contains(strings.ReplaceAll(s, VersionPlaceholder, ""), "{{") {
		return fmt.Errorf("%q: the only placeholder is %s", s, VersionPlaceholder)
	}
	return nil
}

// expand substitutes the image version for VersionPlaceholder.
func expand(s, version string) string { return strings.ReplaceAll(s, VersionPlaceholder, version) }

// checkRel accepts clean slash-separated paths inside the project root.
func checkRel(s string) error {
	switch {
	case s == "" || s == ".":
		return errors.New("empty path")
	case strings.HasPrefix(s, "/"):
		return errors.New("must be relative to the project root")
	case strings.Contains(s, `\`):
		return errors.New("use / as the separator")
	case path.Clean(s) != s:
		return fmt.Errorf("not clean (want %q)", path.Clean(s))
	case s == ".." || strings.HasPrefix(s, "../"):
		return errors.New("leaves the project root")
	}
	return nil
}

// checkAbs accepts clean absolute paths other than the root.
func checkAbs(s string) error {
	switch {
	case !strings.HasPrefix(s, "/"):
		return errors.New("must be absolute")
	case s == "/":
		return errors.New("the root directory is not an entry")
	case path.Clean(s) != s:
		return fmt.Errorf("not clean (want %q)", path.Clean(s))
	case strings.Contains(s, `\`):
		return errors.New("backslashes are not allowed in image paths")
	case len(s) > 4095:
		return errors.New("longer than PATH_MAX")
	}
	return nil
}

// entry is a layer path for conflict checks.
type entry struct {
	path string
	dir  bool
	line int
}

type entryError struct {
	line int
	msg  string
}

// checkEntries refuses two entries with the same path, and a file that
// another entry needs as a directory: the resulting tar would depend on
// which one a reader applies last.
func checkEntries(ents []entry) *entryError {
	byPath := map[string]entry{}
	for _, e := range ents {
		if prev, ok := byPath[e.path]; ok {
			if e.dir && prev.dir {
				return &entryError{e.line, fmt.Sprintf("directory %s is listed twice (also line %d)", e.path, prev.line)}
			}
			return &entryError{e.line, fmt.Sprintf("%s is already written by line %d of this layer", e.path, prev.line)}
		}
		byPath[e.path] = e
	}
	for _, e := range ents {
		for dir := path.Dir(e.path); dir != "/"; dir = path.Dir(dir) {
			if prev, ok := byPath[dir]; ok && !prev.dir {
				return &entryError{e.line, fmt.Sprintf("%s needs %s to be a directory, but line %d makes it a file", e.path, dir, prev.line)}
			}
		}
	}
	return nil
}
