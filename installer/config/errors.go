package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// Problem is one thing wrong in a configuration file: where it is (file,
// line when known, field path such as "networks.workloadPlane[1]") and
// what is wrong.
type Problem struct {
	File  string
	Line  int    // 0 when the problem has no line (a missing field of an empty file)
	Field string // "" for the file as a whole
	Msg   string
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem found in one file, in the order of the file
// (checks across fields come last). Validation does not stop at the first
// problem: whoever fixes the file by hand sees them all at once.
type Errors []*Problem

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As reach each *Problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// checker collects the problems of one file while walking its node tree.
type checker struct {
	file string
	errs Errors
}

func (c *checker) add(n *yaml.Node, field, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	c.errs = append(c.errs, &Problem{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// decode parses data as one strict YAML document (package yamlstrict:
// no aliases, anchors or custom tags) and returns its root, or the
// syntax error as Errors with its file:line.
func decode(file string, data []byte) (*yaml.Node, error) {
	root, err := yamlstrict.Decode(file, data)
	if err != nil {
		if e, ok := err.(*yamlstrict.Error); ok {
			return nil, Errors{{File: e.File, Line: e.Line, Msg: e.Msg}}
		}
		return nil, err
	}
	return root, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// mapping checks that n is a mapping (null counts as an empty one) whose
// keys are all known and given once, and returns the value of each key.
// It returns nil for anything else, so that the caller does not go on to
// report each field of it missing.
func (c *checker) mapping(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		c.add(n, path, "want a mapping, got %s", yamlstrict.Describe(n))
		return nil
	}
	keyLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			c.add(k, path, "a key is %s; keys are field names", yamlstrict.Describe(k))
			continue
		}
		if !contains(known, k.Value) {
			c.add(k, join(path, k.Value), "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		if first, dup := keyLine[k.Value]; dup {
			c.add(k, join(path, k.Value), "given twice (first on line %d)", first)
			continue
		}
		keyLine[k.Value] = k.Line
		out[k.Value] = v
	}
	return out
}

// str returns the text of a scalar; numbers count, as their text (a
// version "1.0" is a YAML float), null and collections do not.
func (c *checker) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!bool" {
		c.add(n, path, "want a string, got %s", yamlstrict.Describe(n))
		return "", false
	}
	return n.Value, true
}

// item is one string of a "one or a list" field, with its own path.
type item struct {
	path string
	node *yaml.Node
	val  string
}

// strings1N reads a field that is one string or a list of strings, as
// controlPlane, workloadPlane and products.metalk8s are.
func (c *checker) strings1N(n *yaml.Node, path string) []item {
	switch n.Kind {
	case yaml.ScalarNode:
		if s, ok := c.str(n, path); ok {
			return []item{{path, n, s}}
		}
	case yaml.SequenceNode:
		var out []item
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if s, ok := c.str(e, p); ok {
				out = append(out, item{p, e, s})
			}
		}
		return out
	default:
		c.add(n, path, "want a string or a list of strings, got %s", yamlstrict.Describe(n))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
