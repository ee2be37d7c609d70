package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/config"
	"github.com/metalk8s/buildchain/installer/kube"
	"github.com/metalk8s/buildchain/installer/mount"
	"github.com/metalk8s/buildchain/installer/serve"
	"github.com/metalk8s/buildchain/internal/cli/clitest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// Issue 12 test 3, through the program: a real etcd and kube-apiserver
// (testenv.NeedKubeAPI), and `metalk8s-installer --kubeconfig K solution
// add ISO` on the example Solution ISO in a temporary root (mounted
// through FUSE, served by nginx). A dry run creates nothing; the add
// creates the CRD, which the API then serves (a custom resource goes in
// and comes back), and the UI Deployment with its image at the registry
// prefix, served by the installer's nginx; a second add reports no
// changes; remove deletes the Deployment and the CRD. client-go reads
// every state back. One API server for the whole test.
func TestKubeEndToEnd(t *testing.T) {
	testenv.Short(t, "runs etcd and kube-apiserver, mounts an ISO through FUSE and starts nginx")
	if nginx := testenv.Need(t, "nginx")[0]; nginx != "/usr/sbin/nginx" {
		t.Skipf("nginx is %s; the installer runs /usr/sbin/nginx", nginx)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skip("FUSE mounts need /dev/fuse and root")
	}
	api := testenv.NeedKubeAPI(t)
	sol := solutionISO(t)
	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	mp := filepath.Join(root, "srv/scality/example-solution-1.0.0")
	t.Cleanup(func() {
		serve.Stop(change.New(root, false))
		syscall.Unmount(mp, syscall.MNT_DETACH)
	})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	run := func(args ...string) (int, string) {
		t.Helper()
		return clitest.Run(t, append([]string{"--root", root, "--listen", listen, "--mount-method", "fuse", "--kubeconfig", api.Kubeconfig}, args...)...)
	}

	ctx := t.Context()
	rc, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(rc)
	const crdName = "examples.example-solution.metalk8s.scality.com"
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	deps := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(kube.DefaultNamespace)
	nss := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	examples := dyn.Resource(schema.GroupVersionResource{Group: "example-solution.metalk8s.scality.com", Version: "v1alpha1", Resource: "examples"}).Namespace("default")
	report := []string{
		"crd " + crdName,
		"deployment " + kube.DefaultNamespace + "/example-solution-ui",
	}
	wantReport := func(what, out, kind string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			// An entry may go on with its details: "mount M (fuse, from ...)".
			if want := fmt.Sprintf("  %-9s %s", kind, l); !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" (") {
				t.Errorf("%s: report lacks %q:\n%s", what, want, out)
			}
		}
	}

	// A dry run asks the API (server-side dry run) and creates nothing.
	code, out := run("--dry-run", "solution", "add", sol)
	if code != 0 {
		t.Fatalf("solution add --dry-run: %d\n%s", code, out)
	}
	wantReport("solution add --dry-run", out, "added", append(report, "namespace "+kube.DefaultNamespace)...)
	if _, err := crds.Get(ctx, crdName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run created the CRD: %v", err)
	}
	if _, err := nss.Get(ctx, kube.DefaultNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run created the namespace: %v", err)
	}
	if cur, err := mount.Current(mp); err != nil || cur != nil {
		t.Errorf("the dry run mounted the Solution: %+v %v", cur, err)
	}
	if _, err := os.Stat(filepath.Join(root, config.SolutionsPath)); !os.IsNotExist(err) {
		t.Errorf("the dry run wrote %s: %v", config.SolutionsPath, err)
	}

	code, out = run("solution", "add", sol)
	if code != 0 {
		t.Fatalf("solution add: %d\n%s", code, out)
	}
	t.Logf("solution add:\n%s", out)
	wantReport("solution add", out, "added", append(report, "namespace "+kube.DefaultNamespace, "mount /srv/scality/example-solution-1.0.0")...)
	// With a kubeconfig, nothing is rendered to a directory.
	if _, err := os.Stat(filepath.Join(root, kube.ManifestsDir, "example-solution-1.0.0")); !os.IsNotExist(err) {
		t.Errorf("manifests written despite --kubeconfig: %v", err)
	}

	// The API serves the Solution's kind as soon as solution add returns.
	ex := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example-solution.metalk8s.scality.com/v1alpha1", "kind": "Example",
		"metadata": map[string]any{"name": "hello", "namespace": "default"},
		"spec":     map[string]any{"replicas": int64(2), "message": "hi"},
	}}
	if _, err := examples.Create(ctx, ex, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating an Example right after solution add: %v", err)
	}
	if back, err := examples.Get(ctx, "hello", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if m, _, _ := unstructured.NestedString(back.Object, "spec", "message"); m != "hi" {
		t.Errorf("Example read back with message %q", m)
	}

	d, err := deps.Get(ctx, "example-solution-ui", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the UI Deployment: %v", err)
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	wantImage := listen + "/example-solution-1.0.0/example-solution-ui:1.0.0"
	if len(cs) != 1 || cs[0].(map[string]any)["image"] != wantImage {
		t.Errorf("UI containers %v; want the image %s", cs, wantImage)
	}
	if l := d.GetLabels(); l[kube.LabelSolution] != "example-solution" || l[kube.LabelVersion] != "1.0.0" || l[kube.LabelManagedBy] != kube.FieldManager {
		t.Errorf("UI Deployment labels %v", l)
	}
	// The image it names is served by the installer's nginx.
	waitStatus(t, "http://"+listen+"/v2/example-solution-1.0.0/example-solution-ui/manifests/1.0.0", http.StatusOK)

	code, out = run("solution", "add", sol)
	if code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("second solution add: %d\n%s", code, out)
	}
	wantReport("second solution add", out, "unchanged", append(report, "namespace "+kube.DefaultNamespace)...)
	if d2, err := deps.Get(ctx, "example-solution-ui", metav1.GetOptions{}); err != nil || d2.GetResourceVersion() != d.GetResourceVersion() {
		t.Errorf("second add wrote the Deployment (resourceVersion %s, was %s): %v", d2.GetResourceVersion(), d.GetResourceVersion(), err)
	}

	// A dry remove deletes nothing.
	code, out = run("--dry-run", "solution", "remove", sol)
	if code != 0 {
		t.Fatalf("solution remove --dry-run: %d\n%s", code, out)
	}
	wantReport("solution remove --dry-run", out, "removed", report...)
	if _, err := deps.Get(ctx, "example-solution-ui", metav1.GetOptions{}); err != nil {
		t.Errorf("the dry remove deleted the Deployment: %v", err)
	}
	if c, err := crds.Get(ctx, crdName, metav1.GetOptions{}); err != nil || c.GetDeletionTimestamp() != nil {
		t.Errorf("the dry remove deleted the CRD: %v", err)
	}

	code, out = run("solution", "remove", sol)
	if code != 0 {
		t.Fatalf("solution remove: %d\n%s", code, out)
	}
	wantReport("solution remove", out, "removed", append(report, "mount /srv/scality/example-solution-1.0.0")...)
	if _, err := deps.Get(ctx, "example-solution-ui", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("UI Deployment still there after remove: %v", err)
	}
	// CRD deletion is asynchronous (the API server first deletes the
	// custom resources): it must at least be on its way out.
	if c, err := crds.Get(ctx, crdName, metav1.GetOptions{}); err == nil && c.GetDeletionTimestamp() == nil {
		t.Error("CRD neither deleted nor being deleted after remove")
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := nss.Get(ctx, kube.DefaultNamespace, metav1.GetOptions{}); err != nil {
		t.Errorf("the shared namespace must stay: %v", err)
	}
	if cur, err := mount.Current(mp); err != nil || cur != nil {
		t.Errorf("Solution still mounted after remove: %+v %v", cur, err)
	}
	if code, out := run("solution", "remove", sol); code != 0 || !strings.Contains(out, "no changes") {
		t.Errorf("second solution remove: %d\n%s", code, out)
	}
}
