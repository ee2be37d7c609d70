// Package kube deploys a Solution's CRDs and UI to Kubernetes, the tooling
// chapter 12.1.3 asks MetalK8s to provide: server-side apply through
// client-go of every CustomResourceDefinition under operator/deploy/crds/,
// then of the UI Deployment (and Service) of ui/deployment.yaml with every
// image pointed at the Solution's repository of the MetalK8s registry.
// Removing the Solution deletes what was applied, found by the labels
// Apply puts on each object. Without a kubeconfig the rendered manifests
// are written to a directory instead, for `kubectl apply -f`.
//
// Every change goes through the caller's change.Tx: recorded for the
// report ("crd <name>", "deployment <ns>/<name>"), as "unchanged" when the
// API server made no change, done as a server-side dry run under
// --dry-run, and undone by Rollback.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/installer/change"
)

const (
	// FieldManager owns, in server-side apply, the fields the installer sets.
	FieldManager = "metalk8s-installer"
	// DefaultNamespace is where Solution UIs run, as in MetalK8s.
	DefaultNamespace = "metalk8s-solutions"
	// ManifestsDir holds, per <name>-<version>, the rendered manifests
	// when there is no kubeconfig.
	ManifestsDir = "/var/lib/metalk8s/installer/manifests"

	// Labels put on every object Apply deploys: Delete removes exactly the
	// objects that carry the Solution's name and version.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelSolution  = "metalk8s.scality.com/solution"
	LabelVersion   = "metalk8s.scality.com/solution-version"
)

// Solution is a Solution archive as the installer sees it once verified.
type Solution struct {
	// Name and Version are product.txt's, e.g. example-solution and 1.0.0.
	Name, Version string
	// FS is the archive's tree (the mounted ISO, or iso.Open). Delete does
	// not need it.
	FS fs.FS
}

// Repository is the Solution's prefix in the registry and its directory
// name: <name>-<version>.
func (s Solution) Repository() string { return s.Name + "-" + s.Version }

// Config says where to deploy.
type Config struct {
	// Kubeconfig is the file to reach the API server with; "" writes the
	// rendered manifests under ManifestsDir instead.
	Kubeconfig string
	// Registry is the registry endpoint the nodes pull from, host[:port]
	// (the repository service, e.g. 10.0.0.1:8080).
	Registry string
	// Namespace for the UI objects; "" is DefaultNamespace.
	Namespace string
	// EstablishTimeout bounds the wait for the API server to serve new
	// CRDs; 0 is one minute.
	EstablishTimeout time.Duration
}

func (c Config) namespace() string {
	if c.Namespace == "" {
		return DefaultNamespace
	}
	return c.Namespace
}

// labelValueRE is the grammar of a label value (63 characters at most).
var labelValueRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

func (s Solution) check() error {
	if !labelValueRE.MatchString(s.Name) || strings.ToLower(s.Name) != s.Name {
		return fmt.Errorf("solution name %q is not a lower-case label value", s.Name)
	}
	if !labelValueRE.MatchString(s.Version) {
		return fmt.Errorf("solution %s: version %q is not a label value", s.Name, s.Version)
	}
	return nil
}

// Load reads the Solution's CRDs and UI objects from its FS, strictly
// (see Parse), and renders them for cfg: labels for the Solution, the
// namespace on the UI objects, and every container image rewritten to
// <registry>/<name>-<version>/<image>:<tag> after checking the image is in
// the archive's images/. CRDs come first, then Services, then
// Deployments: the order they are applied in.
func Load(cfg Config, sol Solution) ([]*Object, error) {
	if err := sol.check(); err != nil {
		return nil, err
	}
	if sol.FS == nil {
		return nil, fmt.Errorf("solution %s: no archive tree to read manifests from", sol.Repository())
	}
	var objs []*Object
	crdFiles, err := fs.ReadDir(sol.FS, solution.CRDsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range crdFiles {
		ext := path.Ext(e.Name())
		if !e.Type().IsRegular() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		p := path.Join(solution.CRDsDir, e.Name())
		got, err := parseFile(sol.FS, p, CRDKind)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	ui, err := parseFile(sol.FS, solution.UIDeployment, DeploymentKind, ServiceKind)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	seen := map[string]*Object{}
	for _, o := range append(objs, ui...) {
		if err := render(cfg, sol, o); err != nil {
			return nil, err
		}
		key := describe(o.Unstructured)
		if prev, dup := seen[key]; dup {
			return nil, o.errorf("", "%s is also defined at %s:%d", key, prev.File, prev.Line)
		}
		seen[key] = o
	}
	order := map[string]int{CRDKind.Kind: 0, ServiceKind.Kind: 1, DeploymentKind.Kind: 2}
	objs = append(objs, ui...)
	sort.SliceStable(objs, func(i, j int) bool { return order[objs[i].GetKind()] < order[objs[j].GetKind()] })
	return objs, nil
}

// maxManifestSize bounds a manifest file read from an archive.
const maxManifestSize = 4 << 20

func parseFile(fsys fs.FS, p string, kinds ...schema.GroupVersionKind) ([]*Object, error) {
	fi, err := fs.Stat(fsys, p)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxManifestSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a manifest may have", p, fi.Size(), maxManifestSize)
	}
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, err
	}
	return Parse(p, data, kinds...)
}

// render labels o, places the UI objects in the namespace and rewrites
// the Deployment's images.
func render(cfg Config, sol Solution, o *Object) error {
	labels := o.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManagedBy] = FieldManager
	labels[LabelSolution] = sol.Name
	labels[LabelVersion] = sol.Version
	o.SetLabels(labels)
	if o.GetKind() == CRDKind.Kind {
		if o.GetNamespace() != "" {
			return o.errorf("metadata.namespace", "a CustomResourceDefinition is cluster-scoped; remove metadata.namespace")
		}
		return nil
	}
	ns := cfg.namespace()
	if got := o.GetNamespace(); got != "" && got != ns {
		return o.errorf("metadata.namespace", "%s %s is in namespace %q; Solution UIs are deployed to %q (leave metadata.namespace out)", o.GetKind(), o.GetName(), got, ns)
	}
	o.SetNamespace(ns)
	if o.GetKind() != DeploymentKind.Kind {
		return nil
	}
	for _, field := range []string{"containers", "initContainers"} {
		cs, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", field)
		if err != nil {
			return o.errorf("spec.template.spec."+field, "%v", err)
		}
		for i, c := range cs {
			cm, ok := c.(map[string]any)
			if !ok {
				continue // the typed check already refused it
			}
			at := fmt.Sprintf("spec.template.spec.%s[%d].image", field, i)
			ref, _ := cm["image"].(string)
			if ref == "" {
				return o.errorf(at, "container %v has no image", cm["name"])
			}
			r, err := ParseImageRef(ref)
			if err != nil {
				return o.errorf(at, "%v", err)
			}
			if sol.FS != nil && r.Tag != "" {
				// A Solution import must never point at images it does not
				// have (MetalK8s #2788): images/<name>/<version>/ is where
				// the archive holds each one.
				if fi, err := fs.Stat(sol.FS, path.Join("images", r.Name(), r.Tag)); err != nil || !fi.IsDir() {
					return o.errorf(at, "image %q is not in the archive (no images/%s/%s/)", ref, r.Name(), r.Tag)
				}
			}
			out, err := RewriteImage(ref, cfg.Registry, sol.Repository())
			if err != nil {
				return o.errorf(at, "%v", err)
			}
			cm["image"] = out
		}
		if cs != nil {
			if err := unstructured.SetNestedSlice(o.Object, cs, "spec", "template", "spec", field); err != nil {
				return err
			}
		}
	}
	return nil
}

// Apply deploys the Solution's CRDs and UI. With cfg.Kubeconfig it applies
// them server-side and returns ""; without, it writes the rendered
// manifests to ManifestsDir/<name>-<version>/ and returns that host path
// for the caller to tell the user.
func Apply(ctx context.Context, tx *change.Tx, cfg Config, sol Solution) (string, error) {
	objs, err := Load(cfg, sol)
	if err != nil {
		return "", err
	}
	if cfg.Kubeconfig == "" {
		return writeManifests(tx, cfg, sol, objs)
	}
	c, err := newClient(cfg.Kubeconfig)
	if err != nil {
		return "", err
	}
	hasUI := false
	for _, o := range objs {
		hasUI = hasUI || o.GetNamespace() != ""
	}
	if hasUI {
		if err := c.ensureNamespace(ctx, tx, cfg.namespace()); err != nil {
			return "", err
		}
	}
	var crds []string
	for _, o := range objs {
		if err := c.apply(ctx, tx, o.Unstructured); err != nil {
			return "", fmt.Errorf("%s (%s:%d): %w", describe(o.Unstructured), o.File, o.Line, err)
		}
		if o.GetKind() == CRDKind.Kind {
			crds = append(crds, o.GetName())
		}
	}
	if !tx.DryRun {
		// Return once the API serves the new kinds, so that the Solution's
		// operator and UI, and the caller, can use them at once.
		if err := c.waitEstablished(ctx, crds, cfg.EstablishTimeout); err != nil {
			return "", err
		}
	}
	return "", nil
}

// Delete removes every object Apply deployed for this Solution version,
// found by its labels (so sol.FS is not needed, and objects another
// version has since taken over stay). Without a kubeconfig it removes the
// rendered manifests and returns their directory.
func Delete(ctx context.Context, tx *change.Tx, cfg Config, sol Solution) (string, error) {
	if err := sol.check(); err != nil {
		return "", err
	}
	if cfg.Kubeconfig == "" {
		return removeManifests(tx, sol)
	}
	c, err := newClient(cfg.Kubeconfig)
	if err != nil {
		return "", err
	}
	selector := fmt.Sprintf("%s=%s,%s=%s,%s=%s", LabelManagedBy, FieldManager, LabelSolution, sol.Name, LabelVersion, sol.Version)
	// The UI first, its kinds last: the reverse of Apply.
	for _, k := range []schema.GroupVersionKind{DeploymentKind, ServiceKind, CRDKind} {
		ri := c.resource(k, "")
		if k != CRDKind {
			ri = c.resource(k, cfg.namespace())
		}
		list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return "", fmt.Errorf("listing %s: %w", k.Kind, err)
		}
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].GetName() < list.Items[j].GetName() })
		for i := range list.Items {
			if list.Items[i].GetDeletionTimestamp() != nil {
				continue // already on its way out (a CRD whose resources go first)
			}
			if err := c.delete(ctx, tx, &list.Items[i]); err != nil {
				return "", err
			}
		}
	}
	return "", nil
}

// manifestFile names a rendered object's file so that `kubectl apply -f
// DIR`, which reads a directory in name order, creates the namespace and
// CRDs before what uses them.
func manifestFile(u *unstructured.Unstructured) string {
	prefix := map[string]string{NamespaceKind.Kind: "00", CRDKind.Kind: "10", ServiceKind.Kind: "20", DeploymentKind.Kind: "30"}[u.GetKind()]
	return fmt.Sprintf("%s-%s-%s.yaml", prefix, strings.ToLower(u.GetKind()), u.GetName())
}

func manifestDir(sol Solution) string { return path.Join(ManifestsDir, sol.Repository()) }

func writeManifests(tx *change.Tx, cfg Config, sol Solution, objs []*Object) (string, error) {
	dir := manifestDir(sol)
	if err := tx.MkdirAll(dir); err != nil {
		return "", err
	}
	us := make([]*unstructured.Unstructured, 0, len(objs)+1)
	for _, o := range objs {
		if o.GetNamespace() != "" {
			ns := &unstructured.Unstructured{}
			ns.SetGroupVersionKind(NamespaceKind)
			ns.SetName(cfg.namespace())
			us = append(us, ns)
			break
		}
	}
	for _, o := range objs {
		us = append(us, o.Unstructured)
	}
	want := map[string]bool{}
	for _, u := range us {
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return "", err
		}
		name := manifestFile(u)
		want[name] = true
		if _, err := tx.WriteFile(path.Join(dir, name), append([]byte("---\n"), data...), 0o644); err != nil {
			return "", err
		}
	}
	// A file of an earlier render that this one has not (a CRD the
	// Solution no longer ships, a changed name) would be applied too.
	old, err := readDirHost(tx, dir)
	if err != nil {
		return "", err
	}
	for _, name := range old {
		if !want[name] {
			if _, err := tx.Remove(path.Join(dir, name)); err != nil {
				return "", err
			}
		}
	}
	return dir, nil
}

func removeManifests(tx *change.Tx, sol Solution) (string, error) {
	dir := manifestDir(sol)
	names, err := readDirHost(tx, dir)
	if err != nil {
		return "", err
	}
	for _, name := range names {
		if _, err := tx.Remove(path.Join(dir, name)); err != nil {
			return "", err
		}
	}
	if err := removeDirIfEmpty(tx, dir); err != nil {
		return "", err
	}
	return dir, nil
}
