package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
	"github.com/metalk8s/buildchain/installer/change"
)

const (
	// SolutionsPath is where solutions.yaml lives on the node.
	SolutionsPath = "/etc/metalk8s/solutions.yaml"
	// DocsSolutionsAPIVersion is the shape the MetalK8s 2.0 docs show
	// (12.1.2): a `solutions:` list of ISOs and nothing else. A new file
	// takes it, and it is kept while only archives change; SetActive
	// rewrites the file to SolutionsAPIVersion, since this shape cannot
	// say which version is active.
	DocsSolutionsAPIVersion = "metalk8s.scality.com/v1alpha1"
	// SolutionsAPIVersion is the shape later MetalK8s 2.x releases read:
	// `archives:` lists Solution ISOs and `active:` maps a Solution name
	// to its active version. It is read and kept.
	SolutionsAPIVersion = "solutions.metalk8s.scality.com/v1alpha1"
	SolutionsKind       = "SolutionsConfiguration"
)

// newSolutions is what a missing solutions.yaml starts as.
const newSolutions = `# The Solutions available to this MetalK8s cluster (MetalK8s docs 12.1.2).
# metalk8s-installer edits it on "solution add" and "solution remove",
# keeping comments and changes made by hand.
apiVersion: ` + DocsSolutionsAPIVersion + `
kind: ` + SolutionsKind + `
solutions: []
`

// Solutions is a checked SolutionsConfiguration and the text it came
// from, which the edit methods change as little as they can: a line is
// added or removed, or one value replaced, so comments, order, quoting
// and blank lines stay as they were. When the file's shape does not allow
// that (flow collections, values over several lines), the edit goes
// through yaml.v3's node tree instead, which keeps comments and order
// but may reformat. Either way the new text is parsed back and must say
// exactly what the edit meant, or the edit fails.
//
// The exported fields are a snapshot for reading, refreshed by each edit.
type Solutions struct {
	File       string
	APIVersion string
	Archives   []string          // absolute, clean paths, in file order
	Active     map[string]string // Solution machine name -> version

	data     []byte
	mode     fs.FileMode
	exists   bool // the file was there when opened
	edited   bool
	surgical bool // how the last edit was made, for tests
}

// LoadSolutions reads and checks the SolutionsConfiguration at path.
func LoadSolutions(path string) (*Solutions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseSolutions(path, data)
}

// OpenSolutions reads the node's solutions.yaml (hostPath, usually
// SolutionsPath) under tx's root for editing. A missing file is a new,
// empty configuration with a header comment, written by Save only if an
// edit changed it. A file that does not parse or check is an error and
// is left as it is.
func OpenSolutions(tx *change.Tx, hostPath string) (*Solutions, error) {
	p := tx.Path(hostPath)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		s, err := ParseSolutions(p, []byte(newSolutions))
		if err != nil {
			panic("config: the new solutions.yaml does not check: " + err.Error())
		}
		s.mode = 0o644
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", p, fi.Mode().Type())
	}
	s, err := LoadSolutions(p)
	if err != nil {
		return nil, err
	}
	s.mode, s.exists = fi.Mode().Perm(), true
	return s, nil
}

// Save writes the configuration back through tx (dry run, idempotence,
// rollback), keeping the file's mode. It reports whether the file
// changed; a file no edit changed is rewritten byte for byte, which tx
// reports as unchanged, and a missing one no edit touched stays missing.
func (s *Solutions) Save(tx *change.Tx, hostPath string) (bool, error) {
	if !s.exists && !s.edited {
		return false, nil
	}
	if err := tx.MkdirAll(pathDir(hostPath)); err != nil {
		return false, err
	}
	return tx.WriteFile(hostPath, s.data, s.mode)
}

// Bytes returns the file's text as it stands.
func (s *Solutions) Bytes() []byte { return slices.Clone(s.data) }

// ActiveNames returns the names of the active Solutions, sorted.
func (s *Solutions) ActiveNames() []string {
	names := slices.Collect(maps.Keys(s.Active))
	sort.Strings(names)
	return names
}

// ParseSolutions checks data, read from the file name, as a
// SolutionsConfiguration. Its error is an Errors listing every problem.
func ParseSolutions(name string, data []byte) (*Solutions, error) {
	root, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	c := &checker{file: name}
	if root == nil {
		c.add(nil, "", "holds no document; want a %s", SolutionsKind)
		return nil, c.err()
	}
	s := &Solutions{File: name, data: data, Active: map[string]string{}}
	listKey, known := "archives", []string{"apiVersion", "kind", "archives", "active"}
	if v := topValue(root, "apiVersion"); v != nil && v.Value == DocsSolutionsAPIVersion {
		listKey, known = "solutions", []string{"apiVersion", "kind", "solutions"}
	}
	top := c.mapping(root, "", known...)
	s.APIVersion = c.header(root, top, SolutionsAPIVersion, DocsSolutionsAPIVersion, SolutionsKind)
	if n := top[listKey]; !isNull(n) {
		if n.Kind != yaml.SequenceNode {
			c.add(n, listKey, "want a list of archive paths, got %s", yamlstrict.Describe(n))
		} else {
			s.Archives = c.archivePaths(c.strings1N(n, listKey))
		}
	}
	if n := top["active"]; !isNull(n) {
		if n.Kind != yaml.MappingNode {
			c.add(n, "active", "want a mapping of Solution names to versions, got %s", yamlstrict.Describe(n))
		} else {
			first := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				name, ok := c.str(k, "active")
				if !ok {
					continue
				}
				path := "active." + name
				if l, dup := first[name]; dup {
					c.add(k, path, "given twice (first on line %d)", l)
					continue
				}
				first[name] = k.Line
				version, ok := c.str(v, path)
				if !ok {
					continue
				}
				if err := CheckActive(name, version); err != nil {
					c.add(v, path, "%v", err)
					continue
				}
				s.Active[name] = version
			}
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckActive returns why name and version cannot be an entry of
// `active:`: the name is a Solution's machine name (product.txt NAME
// lower-cased, as in /srv/scality/<name>-<version>) and the version its
// VERSION, by the rules Solution archives are built with.
func CheckActive(name, version string) error {
	if m := solution.MachineName(name); m != name {
		return fmt.Errorf("%q is not a Solution machine name; write %q", name, m)
	}
	return solution.CheckNameVersion(name, version)
}

func topValue(root *yaml.Node, key string) *yaml.Node {
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return root.Content[i+1]
		}
	}
	return nil
}

func pathDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
