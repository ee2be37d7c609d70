// Package yamlstrict reads the buildchain's own YAML files (images.yaml,
// packages.yaml, package specs, image definitions, solution.yaml) the one
// strict way: one document, no anchors, aliases or custom tags, unknown
// fields refused, and every error an *Error naming file:line.
//
// The files are short and written by hand, so a typo must stop the build
// where it is rather than silently change an artifact, and a hostile file
// (a Solution source from elsewhere) must not cost more than its size.
package yamlstrict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	// MaxSize bounds a file: the largest real one is a few KiB, and
	// yaml.v3 builds a node per token, so memory follows the size.
	MaxSize = 8 << 20
	// MaxDepth bounds nesting, which no file here needs beyond a handful
	// of levels; it keeps the walks over the tree shallow.
	MaxDepth = 100
)

// Error is an error at a line of a YAML file. Line is 0 when the error
// concerns the whole file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// At returns an *Error at a line of file.
func At(file string, line int, format string, a ...any) *Error {
	return &Error{file, line, fmt.Sprintf(format, a...)}
}

// Errorf returns an *Error at the line of n, or for the whole file when n
// is nil.
func Errorf(file string, n *yaml.Node, format string, a ...any) *Error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return At(file, line, format, a...)
}

// yaml.v3 reports syntax errors as text only: "yaml: line N: msg".
var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// SyntaxError turns an error of yaml.v3's parser into an *Error, taking the
// line out of the text where yaml.v3 put it.
func SyntaxError(file string, err error) *Error {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return At(file, line, "invalid YAML: %s", m[2])
	}
	return At(file, 0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// Describe names what n is, for errors: "a mapping", "a list", "the
// scalar \"x\"", "nothing".
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

// Decode parses data, read from file, as exactly one YAML document and
// returns its root node. It returns nil and no error when data holds no
// document (empty, or comments only): what that means is the caller's to
// say.
func Decode(file string, data []byte) (*yaml.Node, error) {
	if len(data) > MaxSize {
		return nil, At(file, 0, "%d bytes, more than the %d a YAML file may have", len(data), MaxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, SyntaxError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errorf(file, &extra, "only one YAML document is allowed, and a second YAML document starts here")
	} else if !errors.Is(err, io.EOF) {
		return nil, SyntaxError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if err := check(file, root, 0); err != nil {
		return nil, err
	}
	return root, nil
}

// Documents parses every document of a multi-document stream, as
// Kubernetes manifests are, and calls fn with the root of each non-empty
// one. A syntax error ends the stream: yaml.v3 cannot resynchronise after
// one. Anchors and aliases are left to fn: the node tree never expands
// them, so they cost nothing here.
func Documents(file string, data []byte, fn func(root *yaml.Node) error) error {
	if len(data) > MaxSize {
		return At(file, 0, "%d bytes, more than the %d a YAML file may have", len(data), MaxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return SyntaxError(file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		if err := fn(doc.Content[0]); err != nil {
			return err
		}
	}
}

// check refuses anchors, aliases and custom tags. Aliases make a file
// harder to read than the lines they save, and expanded by a decoder they
// are how a few bytes become gigabytes; a custom tag means nothing here.
func check(file string, n *yaml.Node, depth int) error {
	if depth > MaxDepth {
		return Errorf(file, n, "nested more than %d levels deep", MaxDepth)
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return Errorf(file, n, "YAML anchors and aliases are not allowed")
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return Errorf(file, n, "custom YAML tag %s is not allowed", n.Tag)
	}
	for _, c := range n.Content {
		if err := check(file, c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Into decodes n into the struct v points to, refusing keys that v has no
// field for at any level. Errors carry the line of the key or value at
// fault.
func Into(file string, n *yaml.Node, v any) error {
	if err := knownFields(file, n, reflect.TypeOf(v)); err != nil {
		return err
	}
	if err := n.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			// "line N: cannot unmarshal ..."; the first is enough.
			msg := te.Errors[0]
			if l, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") {
				if line, err := strconv.Atoi(l); err == nil {
					return At(file, line, "%s", rest)
				}
			}
			return Errorf(file, n, "%s", msg)
		}
		return Errorf(file, n, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// knownFields walks n along the type t, the way yaml.v3 would decode it,
// and refuses a mapping key that names no field. yaml.v3's own KnownFields
// works on a Decoder only, and reports the line without the file.
func knownFields(file string, n *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = f.Type
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				return Errorf(file, k, "unknown field %q", k.Value)
			}
			if prev, dup := seen[k.Value]; dup {
				return Errorf(file, k, "field %q is given twice (first on line %d)", k.Value, prev)
			}
			seen[k.Value] = k.Line
			if err := knownFields(file, n.Content[i+1], ft); err != nil {
				return err
			}
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			if err := knownFields(file, c, t.Elem()); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := knownFields(file, n.Content[i], t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}
