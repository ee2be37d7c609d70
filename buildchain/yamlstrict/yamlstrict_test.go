package yamlstrict

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestDecode(t *testing.T) {
	for _, src := range []string{"", "\n", "# comment only\n"} {
		if n, err := Decode("f.yaml", []byte(src)); n != nil || err != nil {
			t.Errorf("%q: %v %v, want no document and no error", src, n, err)
		}
	}
	n, err := Decode("f.yaml", []byte("# head\na: 1\nb: [x, y]\n"))
	if err != nil || n.Kind != yaml.MappingNode || n.Line != 2 {
		t.Fatalf("got %+v %v", n, err)
	}
	for src, want := range map[string]string{
		"a: [1\n":              "f.yaml:1: invalid YAML: did not find expected ',' or ']'",
		"a: 1\n---\nb: 2\n":    "f.yaml:2: only one YAML document is allowed",
		"a: 1\n---\nb: [\n":    "f.yaml:3: invalid YAML",
		"a: &x 1\nb: *x\n":     "f.yaml:1: YAML anchors and aliases are not allowed",
		"a: 1\nb: *x\n":        "f.yaml: invalid YAML: unknown anchor 'x' referenced",
		"a:\n  b: !secret c\n": "f.yaml:2: custom YAML tag !secret is not allowed",
		"\t- a\n":              "f.yaml: invalid YAML: found character that cannot start any token",
		strings.Repeat("[", 102) + strings.Repeat("]", 102): "f.yaml:1: nested more than 100 levels deep",
		"a: 1\x00\n": "f.yaml: invalid YAML: control characters are not allowed",
	} {
		_, err := Decode("f.yaml", []byte(src))
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v (%T), want an *Error with %q", src, err, err, want)
		}
	}
	big := make([]byte, MaxSize+1)
	if _, err := Decode("f.yaml", big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestInto(t *testing.T) {
	type item struct {
		Name string `yaml:"name"`
		Mode int    `yaml:"mode"`
		Line int    `yaml:"-"`
	}
	type doc struct {
		Items []item          `yaml:"items"`
		Tags  map[string]item `yaml:"tags"`
		Plain string
	}
	n, _ := Decode("f.yaml", []byte("items:\n  - {name: a, mode: 1}\ntags: {x: {name: b}}\nplain: p\n"))
	var d doc
	if err := Into("f.yaml", n, &d); err != nil || len(d.Items) != 1 || d.Tags["x"].Name != "b" || d.Plain != "p" {
		t.Fatalf("got %+v %v", d, err)
	}
	for src, want := range map[string]string{
		"items:\n  - name: a\n    colour: red\n": `f.yaml:3: unknown field "colour"`,
		"tags:\n  x:\n    line: 3\n":             `f.yaml:3: unknown field "line"`,
		"plain: a\nplain: b\n":                   `f.yaml:2: field "plain" is given twice (first on line 1)`,
		"items:\n  - mode: lots\n":               "f.yaml:2: cannot unmarshal !!str `lots` into int",
		"items: 3\n":                             "f.yaml:1: cannot unmarshal",
	} {
		n, err := Decode("f.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		var d doc
		err = Into("f.yaml", n, &d)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an *Error with %q", src, err, want)
		}
	}
}

func TestDocuments(t *testing.T) {
	var kinds []yaml.Kind
	err := Documents("m.yaml", []byte("a: 1\n---\n---\n- x\n---\nb: [\n"), func(n *yaml.Node) error {
		kinds = append(kinds, n.Kind)
		return nil
	})
	// The empty document between two markers is a null scalar.
	if len(kinds) != 3 || kinds[0] != yaml.MappingNode || kinds[1] != yaml.ScalarNode || kinds[2] != yaml.SequenceNode {
		t.Errorf("documents seen: %v", kinds)
	}
	if err == nil || !strings.Contains(err.Error(), "m.yaml:6: invalid YAML") {
		t.Errorf("syntax error in the last document: %v", err)
	}
	stop := errors.New("stop")
	if err := Documents("m.yaml", []byte("a: 1\n---\nb: 2\n"), func(*yaml.Node) error { return stop }); err != stop {
		t.Errorf("callback error: %v", err)
	}
}

// FuzzDecode: no input panics, every refusal is an *Error naming the file,
// and an accepted tree holds no alias, anchor or custom tag.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Decode("f.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "f.yaml" || !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error %v (%T) is not an *Error naming the file", err, err)
			}
			return
		}
		var walk func(*yaml.Node, int)
		walk = func(n *yaml.Node, depth int) {
			if n.Kind == yaml.AliasNode || n.Anchor != "" || depth > MaxDepth+1 {
				t.Fatalf("accepted alias, anchor or depth %d at line %d", depth, n.Line)
			}
			for _, c := range n.Content {
				walk(c, depth+1)
			}
		}
		if n != nil {
			walk(n, 0)
		}
	})
}
