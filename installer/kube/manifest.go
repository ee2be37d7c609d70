package kube

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// Kinds a Solution ships for the installer to deploy (chapter 12.1.3: its
// CRDs and its UI), each with the Go type its fields are checked against.
var (
	CRDKind        = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	DeploymentKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	ServiceKind    = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	NamespaceKind  = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
)

var typed = map[schema.GroupVersionKind]func() any{
	CRDKind:        func() any { return &apiextv1.CustomResourceDefinition{} },
	DeploymentKind: func() any { return &appsv1.Deployment{} },
	ServiceKind:    func() any { return &corev1.Service{} },
}

// Object is one Kubernetes object of a manifest file, with where it came
// from for error messages.
type Object struct {
	File string
	Line int
	*unstructured.Unstructured
	// lines maps a field path (spec.template.spec.containers[0].image) to
	// the line of its value, so later checks name the line too.
	lines map[string]int
}

// lineOf returns the line of a field path, or the object's line.
func (o *Object) lineOf(path string) int {
	if l, ok := o.lines[path]; ok {
		return l
	}
	return o.Line
}

// Parse reads a multi-document manifest file strictly: every non-empty
// document is a mapping of one of the kinds allowed, with metadata.name,
// no YAML anchors, aliases, merge keys, custom tags or duplicate keys, and
// no field its Go type does not have. Errors are *yamlstrict.Error naming
// file:line.
func Parse(file string, data []byte, allowed ...schema.GroupVersionKind) ([]*Object, error) {
	var objs []*Object
	err := yamlstrict.Documents(file, data, func(root *yaml.Node) error {
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return nil // "---" with nothing after it, as kubectl allows
		}
		if root.Kind != yaml.MappingNode {
			return yamlstrict.Errorf(file, root, "a Kubernetes object is a mapping, not %s", yamlstrict.Describe(root))
		}
		o := &Object{File: file, Line: root.Line, lines: map[string]int{}}
		v, err := toValue(file, root, "", 0, o.lines)
		if err != nil {
			return err
		}
		o.Unstructured = &unstructured.Unstructured{Object: v.(map[string]any)}
		if err := o.check(allowed); err != nil {
			return err
		}
		objs = append(objs, o)
		return nil
	})
	return objs, err
}

func (o *Object) errorf(path, format string, a ...any) error {
	return yamlstrict.At(o.File, o.lineOf(path), format, a...)
}

func (o *Object) check(allowed []schema.GroupVersionKind) error {
	for _, f := range []string{"apiVersion", "kind"} {
		if s, ok := o.Object[f].(string); !ok || s == "" {
			return o.errorf(f, "object without %s (a string)", f)
		}
	}
	gvk := o.GroupVersionKind()
	ok := false
	for _, a := range allowed {
		ok = ok || a == gvk
	}
	if !ok {
		var names []string
		for _, a := range allowed {
			names = append(names, a.Kind+" ("+gvString(a)+")")
		}
		return o.errorf("kind", "%s (%s) is not deployed by the installer here; this file may hold only %s",
			gvk.Kind, gvString(gvk), strings.Join(names, ", "))
	}
	md, ok := o.Object["metadata"].(map[string]any)
	if !ok {
		return o.errorf("metadata", "%s without metadata", gvk.Kind)
	}
	if name, _ := md["name"].(string); name == "" {
		return o.errorf("metadata", "%s without metadata.name", gvk.Kind)
	}
	if _, ok := md["generateName"]; ok {
		return o.errorf("metadata.generateName", "metadata.generateName makes a new object on every run; name the object")
	}
	if mk, ok := typed[gvk]; ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, mk(), true); err != nil {
			return o.converterError(gvk.Kind, err)
		}
	}
	return nil
}

// The converter reports `unknown field "spec.x"`: take the path out to
// name its line.
var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]+)"`)

func (o *Object) converterError(kind string, err error) error {
	msg := err.Error()
	path := ""
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		path = m[1]
	}
	return o.errorf(path, "%s %s: %s", kind, o.GetName(), msg)
}

func gvString(g schema.GroupVersionKind) string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

// toValue turns a YAML node into what encoding/json would decode the same
// object to (map[string]any, []any, string, int64, float64, bool, nil),
// which is what unstructured objects hold, refusing what JSON cannot
// express and what makes a small file large (aliases).
func toValue(file string, n *yaml.Node, path string, depth int, lines map[string]int) (any, error) {
	if depth > yamlstrict.MaxDepth {
		return nil, yamlstrict.Errorf(file, n, "nested more than %d levels deep", yamlstrict.MaxDepth)
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return nil, yamlstrict.Errorf(file, n, "YAML anchors and aliases are not allowed in a Solution's manifests")
	}
	if path != "" {
		lines[path] = n.Line
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				if k.Tag == "!!merge" {
					return nil, yamlstrict.Errorf(file, k, "YAML merge keys (<<) are not allowed in a Solution's manifests")
				}
				return nil, yamlstrict.Errorf(file, k, "a mapping key must be a string, not %s", yamlstrict.Describe(k))
			}
			if _, dup := m[k.Value]; dup {
				return nil, yamlstrict.Errorf(file, k, "key %q appears twice", k.Value)
			}
			sub := k.Value
			if path != "" {
				sub = path + "." + k.Value
			}
			val, err := toValue(file, v, sub, depth+1, lines)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			val, err := toValue(file, c, path+"["+strconv.Itoa(i)+"]", depth+1, lines)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		return s, nil
	case yaml.ScalarNode:
		return scalarValue(file, n)
	}
	return nil, yamlstrict.Errorf(file, n, "unexpected %s", yamlstrict.Describe(n))
}

func scalarValue(file string, n *yaml.Node) (any, error) {
	switch n.Tag {
	case "!!str":
		return n.Value, nil
	case "!!timestamp":
		// JSON has no timestamps: Kubernetes reads an unquoted date as the
		// string it is.
		return n.Value, nil
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, yamlstrict.Errorf(file, n, "%s", err)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return nil, yamlstrict.Errorf(file, n, "integer %s does not fit in 64 bits", n.Value)
		}
		return i, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, yamlstrict.Errorf(file, n, "%s", err)
		}
		if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
			return nil, yamlstrict.Errorf(file, n, "%s is not a number JSON can hold", n.Value)
		}
		return f, nil
	}
	return nil, yamlstrict.Errorf(file, n, "YAML tag %s is not allowed in a Solution's manifests", n.Tag)
}

// describe names an object in the change report: "crd <name>",
// "deployment <namespace>/<name>".
func describe(u *unstructured.Unstructured) string {
	kind := strings.ToLower(u.GetKind())
	if u.GetKind() == CRDKind.Kind {
		kind = "crd"
	}
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", kind, ns, u.GetName())
	}
	return kind + " " + u.GetName()
}
