package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// Issue 12 test 2: Debian's kernel under qemu, the MetalK8s ISO and the
// example Solution ISO as two CD-ROM drives, the static installer as the
// ISO ships it: it verifies both (the Solution validator reading the
// drive), mounts them through the kernel's iso9660 driver,
// persists the mounts and starts nginx (workers nobody); on the host,
// through qemu's forwarding bound to 127.0.0.1, skopeo pulls the MetalK8s
// image by digest and the Solution's UI manifest is served. Removing the
// Solution, then the archive, in the guest makes each answer 404.
func TestKernelEndToEnd(t *testing.T) {
	testenv.Short(t, "boots a kernel under qemu")
	skopeo := testenv.Need(t, "skopeo")[0]
	nginx := testenv.Need(t, "nginx")[0]
	k := testenv.NeedKernel(t)
	bin := filepath.Join(t.TempDir(), "metalk8s-installer")
	if err := gobin.CompilePackage(context.Background(), gobin.Options{ProjectRoot: "../..", GOOS: "linux", GOARCH: "amd64"}, "./cmd/metalk8s-installer", bin); err != nil {
		t.Fatal(err)
	}
	isoPath, image, digest := metalk8sISO(t)
	sol := solutionISO(t)
	// The node's bootstrap.yaml: apiServer.host is the guest's address
	// (qemu's user network), which the nodes use to reach the repository
	// service when it listens on every address.
	bootstrap := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(bootstrap, []byte(`apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks: {controlPlane: 10.0.2.0/24, workloadPlane: 10.0.2.0/24}
ca: {minion: bootstrap}
apiServer: {host: 10.0.2.15}
products: {metalk8s: [/dev/cdrom0]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := k.Boot(t, testenv.Guest{
		// /dev/cdrom0 and /dev/cdrom1 in the guest.
		ISOs:     []string{isoPath, sol},
		Programs: []string{nginx},
		Files: map[string]string{"/usr/bin/metalk8s-installer": bin, "/etc/nginx/mime.types": "/etc/nginx/mime.types",
			"/etc/metalk8s/bootstrap.yaml": bootstrap},
		// The service listens on the guest's address, where qemu forwards.
		Init: `set -e
metalk8s-installer --listen 0.0.0.0:8080 --mount-method kernel archive add /dev/cdrom0
metalk8s-installer --listen 0.0.0.0:8080 --mount-method kernel solution add /dev/cdrom1
grep -q ' /srv/scality/metalk8s-2.0.0 iso9660 ' /proc/mounts
grep -q ' /srv/scality/example-solution-1.0.0 iso9660 ' /proc/mounts
# Nodes are pointed at the Bootstrap node's address, not at 0.0.0.0.
grep -q '^baseurl=http://10.0.2.15:8080/metalk8s-2.0.0/metalk8s-epel/$' /etc/yum.repos.d/*.repo
grep -q 'image: 10.0.2.15:8080/example-solution-1.0.0/example-solution-ui:1.0.0$' /var/lib/metalk8s/installer/manifests/example-solution-1.0.0/30-deployment-*.yaml
echo SERVING
`,
		Forward: []int{8080},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := vm.WaitFor(ctx, "SERVING"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vm.Output(), "added     mount /srv/scality/metalk8s-2.0.0 (kernel") || !strings.Contains(vm.Output(), "nginx started") {
		t.Errorf("the installer's report in the guest:\n%s", vm.Output())
	}
	dst := t.TempDir()
	if o, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+vm.Addr(8080)+"/"+image+"@"+digest, "dir:"+dst).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy from the guest: %v\n%s\n%s", err, o, vm.Logs())
	}
	// --listen is not stored: each run says it (or bootstrap.yaml does).
	const flags = "--listen 0.0.0.0:8080 --mount-method kernel"
	solURL := "http://" + vm.Addr(8080) + "/v2/example-solution-1.0.0/example-solution-ui/manifests/1.0.0"
	waitStatus(t, solURL, http.StatusOK)
	out, status, err := vm.Exec(ctx, "metalk8s-installer "+flags+" solution remove /dev/cdrom1 && ! grep -q /srv/scality/example-solution /proc/mounts")
	if err != nil || status != 0 || !strings.Contains(out, "removed   mount /srv/scality/example-solution-1.0.0") {
		t.Fatalf("solution remove in the guest: %d %v\n%s", status, err, out)
	}
	waitStatus(t, solURL, http.StatusNotFound)
	out, status, err = vm.Exec(ctx, "metalk8s-installer "+flags+" archive add /dev/cdrom0")
	if err != nil || status != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("add again in the guest: %d %v\n%s", status, err, out)
	}
	out, status, err = vm.Exec(ctx, "metalk8s-installer "+flags+" archive remove /dev/cdrom0 && ! grep -q /srv/scality/metalk8s-2.0.0 /proc/mounts")
	if err != nil || status != 0 || !strings.Contains(out, "removed   mount /srv/scality/metalk8s-2.0.0") {
		t.Fatalf("remove in the guest: %d %v\n%s", status, err, out)
	}
	waitStatus(t, "http://"+vm.Addr(8080)+"/v2/"+image+"/manifests/"+digest, http.StatusNotFound)
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
