// Package rpmbuild builds the project's own RPMs from declarative specs
// (packages/<name>.yaml) with google/rpmpack: no rpmbuild, no container.
// Output is reproducible: every timestamp is SOURCE_DATE_EPOCH, files are
// added in path order, and compression is deterministic.
package rpmbuild

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/rpmpack"

	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// File is one file of the package. Exactly one of Source, Binary and
// Content gives its bytes.
type File struct {
	Path    string `yaml:"path"`
	Source  string `yaml:"source"`  // relative to the spec's directory
	Binary  string `yaml:"binary"`  // a CLI of cmd/, built for linux/amd64
	Content string `yaml:"content"` // inline
	Mode    string `yaml:"mode"`    // octal, default 0644
	Owner   string `yaml:"owner"`
	Group   string `yaml:"group"`
	Config  bool   `yaml:"config"`
	Line    int    `yaml:"-"`
}

// Dir is a directory the package owns.
type Dir struct {
	Path  string `yaml:"path"`
	Mode  string `yaml:"mode"` // default 0755
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
}

// Scripts are the scriptlets, run by /bin/sh.
type Scripts struct {
	Pre       string `yaml:"pre"`
	Post      string `yaml:"post"`
	Preun     string `yaml:"preun"`
	Postun    string `yaml:"postun"`
	Pretrans  string `yaml:"pretrans"`
	Posttrans string `yaml:"posttrans"`
}

// Spec is a package definition.
type Spec struct {
	Name        string   `yaml:"name"`
	Version     string   `yaml:"version"`
	Release     string   `yaml:"release"`
	Epoch       uint32   `yaml:"epoch"`
	Arch        string   `yaml:"arch"`
	Summary     string   `yaml:"summary"`
	Description string   `yaml:"description"`
	License     string   `yaml:"license"`
	URL         string   `yaml:"url"`
	Vendor      string   `yaml:"vendor"`
	Packager    string   `yaml:"packager"`
	Group       string   `yaml:"group"`
	Requires    []string `yaml:"requires"`
	Provides    []string `yaml:"provides"`
	Conflicts   []string `yaml:"conflicts"`
	Obsoletes   []string `yaml:"obsoletes"`
	Dirs        []Dir    `yaml:"dirs"`
	Files       []File   `yaml:"files"`
	Scripts     Scripts  `yaml:"scripts"`

	File string `yaml:"-"` // where the spec was read from
	Dir  string `yaml:"-"`
}

// Load reads a spec file, refusing unknown keys; errors name file:line.
func Load(file string) (*Spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

// Parse checks a spec's bytes; file names it in errors and locates its
// sources. It reads nothing from disk, so it can be fuzzed.
func Parse(file string, data []byte) (*Spec, error) {
	root, err := yamlstrict.Decode(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, yamlstrict.At(file, 0, "empty package spec")
	}
	var s Spec
	if err := yamlstrict.Into(file, root, &s); err != nil {
		return nil, err
	}
	s.File, s.Dir = file, filepath.Dir(file)
	// Record each file entry's line for later errors.
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "files" {
			for j, n := range root.Content[i+1].Content {
				if j < len(s.Files) {
					s.Files[j].Line = n.Line
				}
			}
		}
	}
	return &s, s.check()
}

func (s *Spec) bad(line int, format string, a ...any) error {
	if line == 0 {
		line = 1
	}
	return fmt.Errorf("%s:%d: %s", s.File, line, fmt.Sprintf(format, a...))
}

func (s *Spec) check() error {
	if s.Name == "" || s.Version == "" || s.Release == "" {
		return s.bad(1, "name, version and release are required")
	}
	if strings.ContainsAny(s.Version+s.Release, "- ") {
		return s.bad(1, "version %q and release %q may not contain '-' or spaces", s.Version, s.Release)
	}
	if s.Arch == "" {
		s.Arch = "noarch"
	}
	if s.Arch != "noarch" && s.Arch != "x86_64" {
		return s.bad(1, "arch %q: want noarch or x86_64", s.Arch)
	}
	if s.Summary == "" || s.License == "" {
		return s.bad(1, "summary and license are required")
	}
	seen := map[string]bool{}
	for _, d := range s.Dirs {
		if !path.IsAbs(d.Path) || path.Clean(d.Path) != d.Path {
			return s.bad(1, "dir %q: want an absolute clean path", d.Path)
		}
		if _, err := mode(d.Mode, 0o755); err != nil {
			return s.bad(1, "dir %s: %v", d.Path, err)
		}
		seen[d.Path] = true
	}
	for _, f := range s.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return s.bad(f.Line, "file %q: want an absolute clean path", f.Path)
		}
		if seen[f.Path] {
			return s.bad(f.Line, "file %s is listed twice", f.Path)
		}
		seen[f.Path] = true
		n := 0
		for _, v := range []string{f.Source, f.Binary, f.Content} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return s.bad(f.Line, "file %s: give exactly one of source, binary or content", f.Path)
		}
		if f.Source != "" && (filepath.IsAbs(f.Source) || strings.Contains(f.Source, "..")) {
			return s.bad(f.Line, "file %s: source %q must be inside %s", f.Path, f.Source, s.Dir)
		}
		if _, err := mode(f.Mode, 0o644); err != nil {
			return s.bad(f.Line, "file %s: %v", f.Path, err)
		}
	}
	for _, list := range [][]string{s.Requires, s.Provides, s.Conflicts, s.Obsoletes} {
		for _, r := range list {
			if _, err := rpmpack.NewRelation(r); err != nil {
				return s.bad(1, "dependency %q: %v", r, err)
			}
		}
	}
	return nil
}

func mode(s string, def uint) (uint, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q: want an octal permission like 0755", s)
	}
	return uint(v), nil
}

// FileName is the conventional file name of the built package.
func (s *Spec) FileName() string {
	return fmt.Sprintf("%s-%s-%s.%s.rpm", s.Name, s.Version, s.Release, s.Arch)
}

// Options are what a build needs from outside the spec.
type Options struct {
	Epoch time.Time
	// Binaries maps CLI names to built files, for File.Binary.
	Binaries map[string]string
	// Sign, when set, signs the header and header+payload (as rpmsign
	// --rpmv3 does), returning a binary OpenPGP signature.
	Sign func([]byte) ([]byte, error)
}

// Build writes the package to w.
func (s *Spec) Build(w io.Writer, opt Options) error {
	rels := func(list []string) (rpmpack.Relations, error) {
		var out rpmpack.Relations
		for _, r := range list {
			rel, err := rpmpack.NewRelation(r)
			if err != nil {
				return nil, err
			}
			out = append(out, rel)
		}
		return out, nil
	}
	md := rpmpack.RPMMetaData{
		Name: s.Name, Version: s.Version, Release: s.Release, Epoch: s.Epoch, Arch: s.Arch,
		Summary: s.Summary, Description: s.Description, Licence: s.License, URL: s.URL,
		Vendor: s.Vendor, Packager: s.Packager, Group: s.Group,
		BuildHost: "metalk8s-buildchain", BuildTime: opt.Epoch, Compressor: "xz",
	}
	var err error
	if md.Requires, err = rels(s.Requires); err != nil {
		return err
	}
	if md.Provides, err = rels(s.Provides); err != nil {
		return err
	}
	if md.Conflicts, err = rels(s.Conflicts); err != nil {
		return err
	}
	if md.Obsoletes, err = rels(s.Obsoletes); err != nil {
		return err
	}
	r, err := rpmpack.NewRPM(md)
	if err != nil {
		return fmt.Errorf("%s: %w", s.File, err)
	}
	if s.Epoch != 0 {
		// rpmpack's own "name = version-release" leaves the epoch out,
		// where rpm writes "name = epoch:version-release": without it a
		// dependency such as "container-selinux >= 2:2.74" would not find
		// 2:2.99, and "< 1:x" would wrongly match epoch 0.
		self := r.FullVersion()
		for i, rel := range r.Provides {
			if rel.Name == s.Name && rel.Version == self {
				r.Provides[i] = &rpmpack.Relation{Name: s.Name, Version: fmt.Sprintf("%d:%s", s.Epoch, self), Sense: rel.Sense}
			}
		}
	}
	mtime := uint32(opt.Epoch.Unix())
	owner := func(o string) string {
		if o == "" {
			return "root"
		}
		return o
	}
	type entry struct {
		path string
		f    rpmpack.RPMFile
	}
	var entries []entry
	for _, d := range s.Dirs {
		m, _ := mode(d.Mode, 0o755)
		entries = append(entries, entry{d.Path, rpmpack.RPMFile{Name: d.Path, Mode: 0o040000 | m, Owner: owner(d.Owner), Group: owner(d.Group), MTime: mtime}})
	}
	for _, f := range s.Files {
		var body []byte
		switch {
		case f.Content != "":
			body = []byte(f.Content)
		case f.Source != "":
			if body, err = os.ReadFile(filepath.Join(s.Dir, f.Source)); err != nil {
				return s.bad(f.Line, "file %s: %v", f.Path, err)
			}
		case f.Binary != "":
			src, ok := opt.Binaries[f.Binary]
			if !ok {
				return s.bad(f.Line, "file %s: no CLI %q is built (is there a cmd/%s?)", f.Path, f.Binary, f.Binary)
			}
			if body, err = os.ReadFile(src); err != nil {
				return s.bad(f.Line, "file %s: %v", f.Path, err)
			}
		}
		m, _ := mode(f.Mode, 0o644)
		rf := rpmpack.RPMFile{Name: f.Path, Body: body, Mode: 0o100000 | m, Owner: owner(f.Owner), Group: owner(f.Group), MTime: mtime}
		if f.Config {
			rf.Type = rpmpack.ConfigFile | rpmpack.NoReplaceFile
		}
		entries = append(entries, entry{f.Path, rf})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	for _, e := range entries {
		r.AddFile(e.f)
	}
	sc := s.Scripts
	for _, x := range []struct {
		body string
		add  func(string)
	}{{sc.Pre, r.AddPrein}, {sc.Post, r.AddPostin}, {sc.Preun, r.AddPreun}, {sc.Postun, r.AddPostun}, {sc.Pretrans, r.AddPretrans}, {sc.Posttrans, r.AddPosttrans}} {
		if x.body != "" {
			x.add(x.body)
		}
	}
	if opt.Sign != nil {
		r.SetPGPSigner(opt.Sign)
	}
	if err := r.Write(w); err != nil {
		return fmt.Errorf("%s: building %s: %w", s.File, s.FileName(), err)
	}
	return nil
}
