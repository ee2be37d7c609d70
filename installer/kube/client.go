package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/metalk8s/buildchain/installer/change"
)

// resources maps the kinds the installer deploys to their API resources:
// fixed, so no discovery round trip is needed.
var resources = map[schema.GroupVersionKind]string{
	CRDKind:        "customresourcedefinitions",
	DeploymentKind: "deployments",
	ServiceKind:    "services",
	NamespaceKind:  "namespaces",
}

type client struct {
	dyn dynamic.Interface
	// missingNS holds the namespaces a dry run would have created: the
	// server cannot dry-run anything into them (NamespaceLifecycle
	// refuses), and nothing can exist there yet.
	missingNS map[string]bool
}

func newClient(kubeconfig string) (*client, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	rc.UserAgent = FieldManager
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return &client{dyn: dyn, missingNS: map[string]bool{}}, nil
}

func (c *client) resource(gvk schema.GroupVersionKind, ns string) dynamic.ResourceInterface {
	r := c.dyn.Resource(gvk.GroupVersion().WithResource(resources[gvk]))
	if ns != "" {
		return r.Namespace(ns)
	}
	return r
}

func (c *client) for_(u *unstructured.Unstructured) dynamic.ResourceInterface {
	return c.resource(u.GroupVersionKind(), u.GetNamespace())
}

func dryRun(tx *change.Tx) []string {
	if tx.DryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// undoContext bounds an undo step: Rollback runs after the command's own
// context may have ended.
func undoContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// ensureNamespace creates the UI namespace when it is missing. It is
// shared by every Solution, so Delete never removes it; Rollback does
// when this run created it.
func (c *client) ensureNamespace(ctx context.Context, tx *change.Tx, name string) error {
	ri := c.resource(NamespaceKind, "")
	what := "namespace " + name
	if _, err := ri.Get(ctx, name, metav1.GetOptions{}); err == nil {
		tx.Record(change.Unchanged, what)
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	ns := &unstructured.Unstructured{}
	ns.SetGroupVersionKind(NamespaceKind)
	ns.SetName(name)
	ns.SetLabels(map[string]string{LabelManagedBy: FieldManager})
	if _, err := ri.Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager, DryRun: dryRun(tx)}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	tx.Record(change.Added, what)
	if tx.DryRun {
		c.missingNS[name] = true
	} else {
		tx.OnRollback(func() error {
			ctx, cancel := undoContext()
			defer cancel()
			return ignoreNotFound(ri.Delete(ctx, name, metav1.DeleteOptions{}))
		})
	}
	return nil
}

// apply server-side applies u, forcing conflicts: the installer is the
// authority on a Solution's CRDs and UI, and an upgrade must win over a
// hand edit (kubectl edit) of a field it sets. The change is judged by
// comparing the object before and after, without what every write or a
// controller changes (resourceVersion, timestamps, status), which works
// for dry runs too: a dry-run apply returns the object as it would be.
func (c *client) apply(ctx context.Context, tx *change.Tx, u *unstructured.Unstructured) error {
	ri := c.for_(u)
	what := describe(u)
	if c.missingNS[u.GetNamespace()] {
		tx.Record(change.Added, what)
		return nil
	}
	before, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		before = nil
	} else if err != nil {
		return err
	}
	after, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true, DryRun: dryRun(tx)})
	if err != nil {
		return err
	}
	switch {
	case before == nil:
		tx.Record(change.Added, what)
	case sameObject(before, after):
		tx.Record(change.Unchanged, what)
		return nil
	default:
		tx.Record(change.Changed, what)
	}
	if tx.DryRun {
		return nil
	}
	tx.OnRollback(func() error {
		ctx, cancel := undoContext()
		defer cancel()
		if before == nil {
			return ignoreNotFound(ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{}))
		}
		// Put the previous object back as it was, over whatever is there.
		cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		prev := before.DeepCopy()
		prev.SetResourceVersion(cur.GetResourceVersion())
		prev.SetManagedFields(nil)
		_, err = ri.Update(ctx, prev, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	return nil
}

// delete removes u, recording it; Rollback creates it again (a CRD's
// custom resources, which the API server deletes with it, do not come
// back).
func (c *client) delete(ctx context.Context, tx *change.Tx, u *unstructured.Unstructured) error {
	ri := c.for_(u)
	what := describe(u)
	bg := metav1.DeletePropagationBackground
	err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{DryRun: dryRun(tx), PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", what, err)
	}
	tx.Record(change.Removed, what)
	if tx.DryRun {
		return nil
	}
	prev := u.DeepCopy()
	tx.OnRollback(func() error {
		ctx, cancel := undoContext()
		defer cancel()
		for _, f := range [][]string{{"metadata", "resourceVersion"}, {"metadata", "uid"}, {"metadata", "creationTimestamp"}, {"metadata", "managedFields"}, {"metadata", "generation"}, {"status"}} {
			unstructured.RemoveNestedField(prev.Object, f...)
		}
		// Deletion is asynchronous for objects with finalizers (a CRD):
		// wait until the name is free.
		for {
			_, err := ri.Create(ctx, prev, metav1.CreateOptions{FieldManager: FieldManager})
			if !apierrors.IsAlreadyExists(err) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return nil
}

// sameObject compares two states of an object without the fields every
// write or a controller changes.
func sameObject(a, b *unstructured.Unstructured) bool {
	return equality.Semantic.DeepEqual(comparable(a), comparable(b))
}

func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c.Object, "metadata", "generation")
	unstructured.RemoveNestedField(c.Object, "status")
	mf := c.GetManagedFields()
	for i := range mf {
		mf[i].Time = nil
	}
	c.SetManagedFields(mf)
	return c.Object
}

// waitEstablished waits until every CRD named is Established, that is
// served by the API.
func (c *client) waitEstablished(ctx context.Context, names []string, timeout time.Duration) error {
	if len(names) == 0 {
		return nil
	}
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ri := c.resource(CRDKind, "")
	for _, name := range names {
		for {
			u, err := ri.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("crd %s: waiting for the API to serve it: %w", name, err)
			}
			if established(u) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("crd %s: not established after %v: %s", name, timeout, conditions(u))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func conditions(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	return fmt.Sprint(conds)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// readDirHost lists the regular files of a host directory under the
// transaction's root; a missing directory has none.
func readDirHost(tx *change.Tx, dir string) ([]string, error) {
	es, err := os.ReadDir(tx.Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// removeDirIfEmpty removes a directory the installer made once nothing is
// left in it. Under a dry run the files are still there, and so it stays.
func removeDirIfEmpty(tx *change.Tx, dir string) error {
	p := tx.Path(dir)
	es, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(es) > 0 && !tx.DryRun {
		return nil
	}
	if tx.DryRun {
		// Every entry would be gone only if each is a file Remove took.
		for _, e := range es {
			if !e.Type().IsRegular() {
				return nil
			}
		}
	}
	tx.Record(change.Removed, "directory "+dir)
	if tx.DryRun {
		return nil
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	tx.OnRollback(func() error { return os.MkdirAll(p, 0o755) })
	return nil
}
