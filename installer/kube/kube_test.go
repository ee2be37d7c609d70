package kube

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func entries(tx *change.Tx) string {
	var s []string
	for _, e := range tx.Entries() {
		s = append(s, string(e.Kind)+" "+e.What)
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}

func TestManifestsWithoutKubeconfig(t *testing.T) {
	root := t.TempDir()
	sol := Solution{Name: "example-solution", Version: "1.0.0", FS: exampleFS(t)}
	cfg := Config{Registry: "10.0.0.1:8080"}
	dir := "/var/lib/metalk8s/installer/manifests/example-solution-1.0.0"

	dry := change.New(root, true)
	got, err := Apply(context.Background(), dry, cfg, sol)
	if err != nil || got != dir {
		t.Fatalf("dry Apply = %q, %v; want %q", got, err, dir)
	}
	if !dry.Changed() {
		t.Error("a dry run reported nothing to do")
	}
	if _, err := os.Stat(filepath.Join(root, "var")); !os.IsNotExist(err) {
		t.Fatalf("a dry run wrote under the root: %v", err)
	}

	tx := change.New(root, false)
	if _, err := Apply(context.Background(), tx, cfg, sol); err != nil {
		t.Fatal(err)
	}
	want := []string{"00-namespace-metalk8s-solutions.yaml", "10-customresourcedefinition-examples.example-solution.metalk8s.scality.com.yaml", "30-deployment-example-solution-ui.yaml"}
	var names []string
	es, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", e.Name(), fi.Mode().Perm())
		}
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", names, want)
	}
	dep, _ := os.ReadFile(filepath.Join(root, dir, want[2]))
	// The rendered file must be what the parser accepts, with the image
	// rewritten and the labels Delete finds it by.
	objs, err := Parse(want[2], dep, DeploymentKind)
	if err != nil {
		t.Fatalf("rendered deployment does not parse: %v\n%s", err, dep)
	}
	if ns := objs[0].GetNamespace(); ns != DefaultNamespace {
		t.Errorf("namespace %q", ns)
	}
	if !strings.Contains(string(dep), "image: 10.0.0.1:8080/example-solution-1.0.0/example-solution-ui:1.0.0\n") {
		t.Errorf("image not rewritten:\n%s", dep)
	}

	again := change.New(root, false)
	if _, err := Apply(context.Background(), again, cfg, sol); err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Errorf("second Apply changed:\n%s", entries(again))
	}

	// A registry change rewrites the Deployment only.
	moved := change.New(root, false)
	if _, err := Apply(context.Background(), moved, Config{Registry: "10.0.0.2:8080"}, sol); err != nil {
		t.Fatal(err)
	}
	if e := entries(moved); !strings.Contains(e, "changed file "+dir+"/30-deployment") || strings.Count("\n"+e, "\nchanged ") != 1 {
		t.Errorf("registry change:\n%s", e)
	}

	rm := change.New(root, false)
	if got, err := Delete(context.Background(), rm, cfg, Solution{Name: sol.Name, Version: sol.Version}); err != nil || got != dir {
		t.Fatalf("Delete = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, dir)); !os.IsNotExist(err) {
		t.Errorf("manifest directory left: %v", err)
	}
	if err := rm.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, dir, want[2])); err != nil {
		t.Errorf("Rollback did not bring the manifests back: %v", err)
	}
}

// TestRealAPI deploys the example Solution to a real kube-apiserver (and
// etcd): the API must then serve its custom resource kind and hold the UI
// Deployment pointed at the registry prefix; a second Apply changes
// nothing; Delete removes exactly what Apply made.
func TestRealAPI(t *testing.T) {
	testenv.Short(t, "runs etcd and kube-apiserver")
	api := testenv.NeedKubeAPI(t)
	ctx := t.Context()
	rc, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(rc)
	crdName := "examples.example-solution.metalk8s.scality.com"
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	deps := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(DefaultNamespace)
	examples := dyn.Resource(schema.GroupVersionResource{Group: "example-solution.metalk8s.scality.com", Version: "v1alpha1", Resource: "examples"})

	sol := Solution{Name: "example-solution", Version: "1.0.0", FS: exampleFS(t)}
	cfg := Config{Kubeconfig: api.Kubeconfig, Registry: "10.0.0.1:8080"}
	root := t.TempDir()

	// A dry run asks the server and changes nothing.
	dry := change.New(root, true)
	if _, err := Apply(ctx, dry, cfg, sol); err != nil {
		t.Fatalf("dry Apply: %v", err)
	}
	wantAdd := "added crd " + crdName + "\nadded deployment metalk8s-solutions/example-solution-ui\nadded namespace metalk8s-solutions"
	if e := entries(dry); e != wantAdd {
		t.Errorf("dry Apply reported:\n%s\nwant:\n%s", e, wantAdd)
	}
	if _, err := crds.Get(ctx, crdName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry run created the CRD: %v", err)
	}

	tx := change.New(root, false)
	if dir, err := Apply(ctx, tx, cfg, sol); err != nil || dir != "" {
		t.Fatalf("Apply = %q, %v", dir, err)
	}
	if e := entries(tx); e != wantAdd {
		t.Errorf("Apply reported:\n%s\nwant:\n%s", e, wantAdd)
	}

	// The API serves the new kind: a custom resource goes in and comes
	// back, validated by the CRD's schema.
	ex := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example-solution.metalk8s.scality.com/v1alpha1", "kind": "Example",
		"metadata": map[string]any{"name": "hello", "namespace": "default"},
		"spec":     map[string]any{"replicas": int64(2), "message": "hi"},
	}}
	if _, err := examples.Namespace("default").Create(ctx, ex, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating an Example: %v", err)
	}
	back, err := examples.Namespace("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m, _, _ := unstructured.NestedString(back.Object, "spec", "message"); m != "hi" {
		t.Errorf("Example read back with message %q", m)
	}
	bad := ex.DeepCopy()
	bad.SetName("bad")
	_ = unstructured.SetNestedField(bad.Object, int64(-1), "spec", "replicas")
	if _, err := examples.Namespace("default").Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("an Example with replicas -1 got %v; the CRD's schema (minimum 0) must refuse it", err)
	}

	d, err := deps.Get(ctx, "example-solution-ui", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if img := cs[0].(map[string]any)["image"]; img != "10.0.0.1:8080/example-solution-1.0.0/example-solution-ui:1.0.0" {
		t.Errorf("deployed image %v", img)
	}
	for _, mf := range d.GetManagedFields() {
		if mf.Manager != FieldManager || mf.Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("field manager %s (%s); want only %s applying", mf.Manager, mf.Operation, FieldManager)
		}
	}

	again := change.New(root, false)
	if _, err := Apply(ctx, again, cfg, sol); err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Errorf("second Apply changed:\n%s", entries(again))
	}
	dryAgain := change.New(root, true)
	if _, err := Apply(ctx, dryAgain, cfg, sol); err != nil {
		t.Fatal(err)
	}
	if dryAgain.Changed() {
		t.Errorf("a dry Apply over the applied state reports changes:\n%s", entries(dryAgain))
	}

	// A hand edit is put back, and reported as a change; Rollback
	// restores the edit.
	d.SetResourceVersion("")
	_ = unstructured.SetNestedField(d.Object, int64(3), "spec", "replicas")
	d.SetManagedFields(nil)
	if _, err := deps.Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	fix := change.New(root, false)
	if _, err := Apply(ctx, fix, cfg, sol); err != nil {
		t.Fatal(err)
	}
	if e := entries(fix); !strings.Contains(e, "changed deployment metalk8s-solutions/example-solution-ui") {
		t.Errorf("after a hand edit Apply reported:\n%s", e)
	}
	if r := replicas(t, deps); r != 1 {
		t.Errorf("replicas %d after Apply, want the Solution's 1", r)
	}
	if err := fix.Rollback(); err != nil {
		t.Fatal(err)
	}
	if r := replicas(t, deps); r != 3 {
		t.Errorf("replicas %d after Rollback, want the edit's 3 back", r)
	}
	if _, err := Apply(ctx, change.New(root, false), cfg, sol); err != nil {
		t.Fatal(err)
	}

	// Another version's Delete must not touch this version's objects.
	other := change.New(root, false)
	if _, err := Delete(ctx, other, cfg, Solution{Name: "example-solution", Version: "0.9.0"}); err != nil {
		t.Fatal(err)
	}
	if other.Changed() {
		t.Errorf("deleting version 0.9.0 removed:\n%s", entries(other))
	}

	dryRm := change.New(root, true)
	if _, err := Delete(ctx, dryRm, cfg, Solution{Name: sol.Name, Version: sol.Version}); err != nil {
		t.Fatal(err)
	}
	wantRm := "removed crd " + crdName + "\nremoved deployment metalk8s-solutions/example-solution-ui"
	if e := entries(dryRm); e != wantRm {
		t.Errorf("dry Delete reported:\n%s\nwant:\n%s", e, wantRm)
	}
	if _, err := crds.Get(ctx, crdName, metav1.GetOptions{}); err != nil {
		t.Fatalf("a dry Delete removed the CRD: %v", err)
	}

	rm := change.New(root, false)
	if _, err := Delete(ctx, rm, cfg, Solution{Name: sol.Name, Version: sol.Version}); err != nil {
		t.Fatal(err)
	}
	if e := entries(rm); e != wantRm {
		t.Errorf("Delete reported:\n%s\nwant:\n%s", e, wantRm)
	}
	if _, err := deps.Get(ctx, "example-solution-ui", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment still there after Delete: %v", err)
	}
	// CRD deletion is asynchronous (the API server first removes every
	// custom resource): it must at least be on its way out.
	if c, err := crds.Get(ctx, crdName, metav1.GetOptions{}); err == nil && c.GetDeletionTimestamp() == nil {
		t.Error("CRD neither deleted nor being deleted")
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, DefaultNamespace, metav1.GetOptions{}); err != nil {
		t.Errorf("the shared namespace must stay: %v", err)
	}
	rm2 := change.New(root, false)
	if _, err := Delete(ctx, rm2, cfg, Solution{Name: sol.Name, Version: sol.Version}); err != nil {
		t.Fatal(err)
	}
	if e := entries(rm2); strings.Contains(e, "deployment") {
		t.Errorf("second Delete:\n%s", e)
	}
}

func replicas(t *testing.T, deps dynamic.ResourceInterface) int64 {
	t.Helper()
	d, err := deps.Get(t.Context(), "example-solution-ui", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	return r
}
