package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

func TestRewriteImage(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct{ in, want, err string }{
		{in: "metalk8s-registry-from-config.invalid/example-solution-1.0.0/example-solution-ui:1.0.0",
			want: "10.0.0.1:8080/example-solution-1.0.0/example-solution-ui:1.0.0"},
		{in: "example-solution-ui:1.0.0", want: "10.0.0.1:8080/example-solution-1.0.0/example-solution-ui:1.0.0"},
		{in: "some/deep/path/example-solution-ui:1.0.0", want: "10.0.0.1:8080/example-solution-1.0.0/example-solution-ui:1.0.0"},
		{in: "localhost/ui@" + digest, want: "10.0.0.1:8080/example-solution-1.0.0/ui@" + digest},
		{in: "reg:5000/ui:1.0@" + digest, want: "10.0.0.1:8080/example-solution-1.0.0/ui:1.0@" + digest},
		{in: "ui", err: "neither tag nor digest"},
		{in: "UI:1.0", err: "UI"},
		{in: "ui:bad tag", err: "tag"},
		{in: "ui@sha256:abc", err: "digest"},
		{in: "bad_host.x:99999999/ui:1", err: "host"},
		{in: "ui:1.0/../x", err: "ui:1.0/../x"},
		{in: "", err: "image"},
	} {
		got, err := RewriteImage(c.in, "10.0.0.1:8080", "example-solution-1.0.0")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("RewriteImage(%q) = %q, %v; want an error about %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("RewriteImage(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := RewriteImage("ui:1", "http://x/", "s-1"); err == nil {
		t.Error("a URL was taken as a registry endpoint")
	}
	if _, err := RewriteImage("ui:1", "10.0.0.1", "../x"); err == nil {
		t.Error("a path was taken as a repository")
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		line      int
		want      string
	}{
		{"unknown kind", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", 2, "Secret (v1) is not deployed"},
		{"old CRD version", "apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\nmetadata: {name: x}\n", 2, "not deployed"},
		{"second doc bad", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n", 6, "Pod (v1)"},
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  prots: []\n", 5, `unknown field "spec.prots"`},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: []\n", 1, "Service a"},
		{"no name", "apiVersion: v1\nkind: Service\nmetadata: {}\n", 3, "metadata.name"},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", 1, "without kind"},
		{"anchor", "apiVersion: v1\nkind: Service\nmetadata: &m {name: a}\n", 3, "anchors"},
		{"merge key", "apiVersion: v1\nkind: Service\nmetadata:\n  <<: {name: a}\n", 4, "merge"},
		{"duplicate key", "apiVersion: v1\nkind: Service\nkind: Service\nmetadata: {name: a}\n", 3, "twice"},
		{"custom tag", "apiVersion: v1\nkind: !foo Service\nmetadata: {name: a}\n", 2, "tag !foo"},
		{"not a mapping", "- a\n", 1, "mapping"},
		{"syntax", "apiVersion: v1\nkind: [\n", 2, "invalid YAML"},
		{"int key", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n1: x\n", 4, "key must be a string"},
		{"generateName", "apiVersion: v1\nkind: Service\nmetadata: {name: a, generateName: b}\n", 3, "generateName"},
	} {
		_, err := Parse("ui/deployment.yaml", []byte(c.doc), DeploymentKind, ServiceKind)
		var ye *yamlstrict.Error
		if !errors.As(err, &ye) {
			t.Errorf("%s: got %v, want a *yamlstrict.Error", c.name, err)
			continue
		}
		if ye.File != "ui/deployment.yaml" || ye.Line != c.line || !strings.Contains(ye.Msg, c.want) {
			t.Errorf("%s: got %q (line %d), want line %d and %q", c.name, err, ye.Line, c.line, c.want)
		}
	}
}

func TestParseKeepsValues(t *testing.T) {
	objs, err := Parse("f.yaml", []byte("---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  annotations: {d: 2024-01-01, n: \"1\"}\nspec:\n  ports: [{port: 80, name: http}]\n"), ServiceKind)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Line != 3 {
		t.Fatalf("got %d objects, want 1 at line 3", len(objs))
	}
	o := objs[0]
	if got := o.GetAnnotations(); got["d"] != "2024-01-01" || got["n"] != "1" {
		t.Errorf("annotations %v: timestamps and quoted numbers must stay strings", got)
	}
	ports := o.Object["spec"].(map[string]any)["ports"].([]any)
	if p := ports[0].(map[string]any)["port"]; p != int64(80) {
		t.Errorf("port %v (%T): want int64 80, as JSON decoding gives unstructured", p, p)
	}
	if l := o.lineOf("spec.ports[0].port"); l != 9 {
		t.Errorf("line of spec.ports[0].port = %d, want 9", l)
	}
}

// exampleFS is the example Solution's tree as its ISO lays it out: the
// manifests of examples/solution and the images directory of each image.
func exampleFS(t testing.TB) fstest.MapFS {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "solution")
	m := fstest.MapFS{
		"images/example-solution-ui/1.0.0/index.json":       {Data: []byte("{}")},
		"images/example-solution-operator/1.0.0/index.json": {Data: []byte("{}")},
	}
	for _, p := range []string{"operator/deploy/crds/examples_crd.yaml", "operator/deploy/operator.yaml", "ui/deployment.yaml"} {
		data, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		m[p] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	return m
}

func TestLoadExample(t *testing.T) {
	sol := Solution{Name: "example-solution", Version: "1.0.0", FS: exampleFS(t)}
	objs, err := Load(Config{Registry: "10.0.0.1:8080"}, sol)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, describe(o.Unstructured))
		if l := o.GetLabels(); l[LabelSolution] != "example-solution" || l[LabelVersion] != "1.0.0" || l[LabelManagedBy] != FieldManager {
			t.Errorf("%s labels %v", describe(o.Unstructured), l)
		}
	}
	want := "crd examples.example-solution.metalk8s.scality.com, deployment metalk8s-solutions/example-solution-ui"
	if strings.Join(got, ", ") != want {
		t.Fatalf("objects %q, want %q", strings.Join(got, ", "), want)
	}
	img := objs[1].Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
	if img != "10.0.0.1:8080/example-solution-1.0.0/example-solution-ui:1.0.0" {
		t.Errorf("image %v not rewritten to the registry prefix", img)
	}
	// operator.yaml is the user's to deploy (chapter 12.1.3): never loaded.
	for _, o := range objs {
		if o.File == "operator/deploy/operator.yaml" {
			t.Error("the operator Deployment was loaded")
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	base := exampleFS(t)
	dep := string(base["ui/deployment.yaml"].Data)
	for _, c := range []struct {
		name string
		edit func(m fstest.MapFS)
		want string
	}{
		{"image not shipped", func(m fstest.MapFS) {
			m["ui/deployment.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(dep, "ui:1.0.0", "ui:2.0.0", 1))}
		}, "ui/deployment.yaml:21: image \"metalk8s-registry-from-config.invalid/example-solution-1.0.0/example-solution-ui:2.0.0\" is not in the archive"},
		{"other namespace", func(m fstest.MapFS) {
			m["ui/deployment.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(dep, "  name: example-solution-ui\n", "  name: example-solution-ui\n  namespace: kube-system\n", 1))}
		}, "ui/deployment.yaml:5: Deployment example-solution-ui is in namespace \"kube-system\""},
		{"a Role in crds", func(m fstest.MapFS) {
			m["operator/deploy/crds/role.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n")}
		}, "operator/deploy/crds/role.yaml:2: Role (rbac.authorization.k8s.io/v1) is not deployed"},
		{"twice the same", func(m fstest.MapFS) {
			m["operator/deploy/crds/again.yaml"] = base["operator/deploy/crds/examples_crd.yaml"]
		}, "is also defined at"},
	} {
		m := fstest.MapFS{}
		for k, v := range base {
			m[k] = v
		}
		c.edit(m)
		_, err := Load(Config{Registry: "10.0.0.1:8080"}, Solution{Name: "example-solution", Version: "1.0.0", FS: m})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	for _, bad := range []Solution{{Name: "Example", Version: "1"}, {Name: "x", Version: "1/2"}, {Name: "x/y", Version: "1"}} {
		bad.FS = base
		if _, err := Load(Config{Registry: "r.example:1"}, bad); err == nil {
			t.Errorf("solution %q %q accepted", bad.Name, bad.Version)
		}
	}
}

// FuzzParse feeds arbitrary manifests to the strict parser: it must
// return objects or a *yamlstrict.Error, never panic, and every object
// it returns must be of an allowed kind with a name.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../examples/solution/ui/deployment.yaml", "../../examples/solution/operator/deploy/crds/examples_crd.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Parse("f.yaml", data, CRDKind, DeploymentKind, ServiceKind)
		if err != nil {
			var ye *yamlstrict.Error
			if !errors.As(err, &ye) {
				t.Fatalf("error %v is not a *yamlstrict.Error", err)
			}
			return
		}
		for _, o := range objs {
			k := o.GroupVersionKind()
			if (k != CRDKind && k != DeploymentKind && k != ServiceKind) || o.GetName() == "" {
				t.Fatalf("accepted %v named %q", k, o.GetName())
			}
		}
	})
}
