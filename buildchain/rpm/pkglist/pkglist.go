// Package pkglist reads packages/packages.yaml: the package repositories
// the ISO draws from, the package sets it ships, and the packages built
// locally. Every error names file:line.
package pkglist

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// Kind says what happens to a repository's packages.
type Kind string

const (
	// Shipped repositories have the packages of the closure copied into
	// the ISO, with repodata.
	Shipped Kind = "shipped"
	// External repositories (the base OS) satisfy dependencies but are
	// never copied: nodes already have them configured.
	External Kind = "external"
)

// Repo is one repository.
type Repo struct {
	Name    string   `yaml:"name"`
	BaseURL string   `yaml:"baseurl"`
	GPGKeys []string `yaml:"gpgkeys"`
	Kind    Kind     `yaml:"kind"`
	// GPGCheck defaults to true when keys are given: every package must
	// be signed by one of them.
	GPGCheck *bool `yaml:"gpgcheck"`
	// Moved records where the repository used to live, for the reader.
	Moved string `yaml:"moved_from"`
	Line  int    `yaml:"-"`
}

// Signed reports whether packages of r must carry a valid signature.
func (r *Repo) Signed() bool {
	if r.GPGCheck != nil {
		return *r.GPGCheck
	}
	return len(r.GPGKeys) > 0
}

// Package is one requested package, optionally pinned.
type Package struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"` // [epoch:]version[-release]
	Line    int    `yaml:"-"`
}

// Set is a named group of requested packages.
type Set struct {
	Name     string    `yaml:"name"`
	Packages []Package `yaml:"-"`
	Line     int       `yaml:"-"`
}

// Local is a package built here from a spec file.
type Local struct {
	Spec string `yaml:"spec"` // path relative to the packages file
	Repo string `yaml:"repo"` // the shipped repo it goes into
	Line int    `yaml:"-"`
}

// List is the whole file.
type List struct {
	File  string
	Repos []Repo
	Sets  []Set
	Local []Local
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// Load reads and checks a packages file.
func Load(path string) (*List, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse checks data read from file.
func Parse(file string, data []byte) (*List, error) {
	bad := func(line int, format string, a ...any) error {
		return yamlstrict.At(file, line, format, a...)
	}
	// strict decodes an entry, naming what it is and the line of the
	// field at fault.
	strict := func(what string, n *yaml.Node, v any) error {
		err := yamlstrict.Into(file, n, v)
		if e, ok := err.(*yamlstrict.Error); ok {
			return bad(e.Line, "%s: %s", what, e.Msg)
		}
		return err
	}
	root, err := yamlstrict.Decode(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, bad(1, "want a mapping with repositories, sets and local")
	}
	l := &List{File: file}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			return nil, bad(k.Line, "key %q is given twice", k.Value)
		}
		seen[k.Value] = true
		if v.Kind != yaml.SequenceNode {
			return nil, bad(v.Line, "%s: want a list", k.Value)
		}
		switch k.Value {
		case "repositories":
			for _, n := range v.Content {
				var r Repo
				if err := strict("repository", n, &r); err != nil {
					return nil, err
				}
				r.Line = n.Line
				l.Repos = append(l.Repos, r)
			}
		case "sets":
			for _, n := range v.Content {
				s, err := parseSet(n, bad, strict)
				if err != nil {
					return nil, err
				}
				l.Sets = append(l.Sets, s)
			}
		case "local":
			for _, n := range v.Content {
				var lo Local
				if err := strict("local package", n, &lo); err != nil {
					return nil, err
				}
				lo.Line = n.Line
				l.Local = append(l.Local, lo)
			}
		default:
			return nil, bad(k.Line, "unknown key %q (want repositories, sets or local)", k.Value)
		}
	}
	return l, l.check(bad)
}

func parseSet(n *yaml.Node, bad func(int, string, ...any) error, strict func(string, *yaml.Node, any) error) (Set, error) {
	s := Set{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		return s, bad(n.Line, "set: want a mapping with name and packages")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			s.Name = v.Value
		case "packages":
			if v.Kind != yaml.SequenceNode {
				return s, bad(v.Line, "packages: want a list")
			}
			for _, p := range v.Content {
				pk := Package{Line: p.Line}
				switch p.Kind {
				case yaml.ScalarNode:
					// "name" or "name = version"
					name, ver, _ := strings.Cut(p.Value, "=")
					pk.Name, pk.Version = strings.TrimSpace(name), strings.TrimSpace(ver)
				case yaml.MappingNode:
					if err := strict("package", p, &pk); err != nil {
						return s, err
					}
					pk.Line = p.Line
				default:
					return s, bad(p.Line, "package: want a name or {name, version}")
				}
				s.Packages = append(s.Packages, pk)
			}
		default:
			return s, bad(k.Line, "set: unknown key %q (want name, packages)", k.Value)
		}
	}
	return s, nil
}

func (l *List) check(bad func(int, string, ...any) error) error {
	repos := map[string]*Repo{}
	for i := range l.Repos {
		r := &l.Repos[i]
		if !nameRe.MatchString(r.Name) {
			return bad(r.Line, "repository name %q is not a valid name", r.Name)
		}
		if repos[r.Name] != nil {
			return bad(r.Line, "repository %q is defined twice (first at line %d)", r.Name, repos[r.Name].Line)
		}
		repos[r.Name] = r
		switch r.Kind {
		case Shipped, External:
		case "":
			return bad(r.Line, "repository %s: kind is missing (shipped or external)", r.Name)
		default:
			return bad(r.Line, "repository %s: kind %q is neither shipped nor external", r.Name, r.Kind)
		}
		if r.BaseURL == "" {
			if r.Kind == External {
				return bad(r.Line, "repository %s: an external repository needs a baseurl", r.Name)
			}
		} else if err := config.CheckRepoURL(r.BaseURL); err != nil {
			return bad(r.Line, "repository %s: baseurl: %v", r.Name, err)
		}
		for _, k := range r.GPGKeys {
			if err := config.CheckRepoURL(k); err != nil {
				return bad(r.Line, "repository %s: gpgkey: %v", r.Name, err)
			}
		}
		if r.Signed() && len(r.GPGKeys) == 0 {
			return bad(r.Line, "repository %s: gpgcheck is on but no gpgkeys are given", r.Name)
		}
	}
	sets := map[string]bool{}
	for _, s := range l.Sets {
		if !nameRe.MatchString(s.Name) {
			return bad(s.Line, "set name %q is not a valid name", s.Name)
		}
		if sets[s.Name] {
			return bad(s.Line, "set %q is defined twice", s.Name)
		}
		sets[s.Name] = true
		for _, p := range s.Packages {
			if !nameRe.MatchString(p.Name) {
				return bad(p.Line, "set %s: package name %q is not valid", s.Name, p.Name)
			}
		}
	}
	for _, lo := range l.Local {
		if lo.Spec == "" || filepath.IsAbs(lo.Spec) || strings.Contains(lo.Spec, "..") {
			return bad(lo.Line, "local package: spec %q must be a path inside the packages directory", lo.Spec)
		}
		r := repos[lo.Repo]
		if r == nil {
			return bad(lo.Line, "local package %s: repo %q is not defined", lo.Spec, lo.Repo)
		}
		if r.Kind != Shipped {
			return bad(lo.Line, "local package %s: repo %q is not shipped", lo.Spec, lo.Repo)
		}
	}
	return nil
}

// ApplyMirrors replaces base URLs as REPO_MIRRORS asks; a mirror for an
// unknown repository is an error, since it is most likely a typo.
func (l *List) ApplyMirrors(m map[string]string) error {
	for name, u := range m {
		found := false
		for i := range l.Repos {
			if l.Repos[i].Name == name {
				l.Repos[i].BaseURL = u
				found = true
			}
		}
		if !found {
			return fmt.Errorf("REPO_MIRRORS: %s: no repository %q in %s", name, name, l.File)
		}
	}
	return nil
}
