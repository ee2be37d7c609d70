package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func run(t testing.TB, prog string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return out
}

// apply runs Apply in a fresh transaction, failing the test on error, and
// stops the nginx it started when the test ends.
func apply(t *testing.T, root string, archives []Archive, opts Options) (*change.Tx, *Result) {
	t.Helper()
	tx := change.New(root, false)
	res, err := Apply(context.Background(), tx, archives, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Started {
		t.Cleanup(func() { Stop(change.New(root, false)) })
	}
	return tx, res
}

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// waitStatus waits until url answers want: a reload is asynchronous (the
// old workers finish, new ones start). It is a wait, not a timed
// assertion: the failure is the wrong status after a generous bound.
func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	var got int
	for i := 0; i < 300; i++ {
		if got, _ = get(t, url); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %d, want %d", url, got, want)
}

func manifestURL(opts Options, repo string, im fixtureImage) string {
	return fmt.Sprintf("http://%s/v2/%s/%s/manifests/%s", opts.Listen, repo, im.name, im.digest)
}

// TestServeEndToEnd serves a MetalK8s-like and a Solution-like archive
// from one generated nginx (unprivileged workers) and pulls from it with
// skopeo, ctr (by the served names, and by the upstream names through the
// generated hosts.toml), dnf (gpgcheck on, from the generated .repo); then
// checks idempotence, and that removing an archive stops serving it only.
func TestServeEndToEnd(t *testing.T) {
	testenv.Short(t, "runs nginx, skopeo, containerd and dnf")
	tools := testenv.Need(t, "skopeo", "dnf", "rpm")
	skopeo, dnf := tools[0], tools[1]
	root := testRoot(t)
	mk, sol := twoArchives(t, root)
	opts := testOptions(t)
	tx, res := apply(t, root, archivesOf(mk, sol), opts)
	if !res.Started || !res.ConfigChanged {
		t.Fatalf("first apply: %+v", res)
	}
	var report bytes.Buffer
	tx.Print(&report)
	for _, want := range []string{ServerConfig, MainConfig, UnitFile, "/etc/yum.repos.d/metalk8s-metalk8s-2.0.0-metalk8s-epel.repo",
		"/etc/containerd/certs.d/quay.mirror.invalid/hosts.toml", "/etc/containerd/certs.d/k8s.mirror.invalid/hosts.toml", "nginx started"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %s:\n%s", want, report.String())
		}
	}
	pid, _ := runningPid(change.New(root, false))
	// skopeo copies every image of both archives, by tag, and the copy's
	// manifest has the shipped digest.
	for _, a := range []*fixtureArchive{mk, sol} {
		for _, im := range a.images {
			ref := fmt.Sprintf("docker://%s/%s/%s:%s", opts.Listen, a.Repository(), im.name, im.tag)
			dst := t.TempDir()
			run(t, skopeo, "copy", "--src-tls-verify=false", "--preserve-digests", ref, "dir:"+dst)
			m, err := os.ReadFile(filepath.Join(dst, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if d := sha256.Sum256(m); "sha256:"+hex.EncodeToString(d[:]) != im.digest {
				t.Errorf("%s: manifest digest %x, want %s", ref, d, im.digest)
			}
		}
	}

	// The workers that served the pulls are not root.
	if uids := childUIDs(t, pid); len(uids) == 0 || strings.Contains(" "+strings.Join(uids, " ")+" ", " 0 ") {
		t.Errorf("nginx (pid %d) workers run as uids %v, want an unprivileged user", pid, uids)
	}

	// containerd: by the served name, and by the upstream name and digest
	// through the generated hosts.toml (the upstream hosts never resolve).
	addr := testenv.StartContainerd(t)
	ctr := testenv.Need(t, "ctr")[0]
	hostsDir := filepath.Join(root, "etc/containerd/certs.d")
	for _, a := range []*fixtureArchive{mk, sol} {
		for _, im := range a.images {
			ref := fmt.Sprintf("%s/%s/%s:%s", opts.Listen, a.Repository(), im.name, im.tag)
			run(t, ctr, "--address", addr, "--namespace", "serve", "images", "pull", "--plain-http", "--snapshotter", "native", ref)
			if out := run(t, ctr, "--address", addr, "--namespace", "serve", "images", "list", "name=="+ref); !bytes.Contains(out, []byte(im.digest)) {
				t.Errorf("ctr images list %s: no %s in\n%s", ref, im.digest, out)
			}
		}
	}
	for _, im := range mk.images {
		ref := im.source + "@" + im.digest
		run(t, ctr, "--address", addr, "--namespace", "upstream", "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", ref)
		if out := run(t, ctr, "--address", addr, "--namespace", "upstream", "images", "list", "name=="+ref); !bytes.Contains(out, []byte(im.digest)) {
			t.Errorf("ctr images list %s: no %s in\n%s", ref, im.digest, out)
		}
		// And by tag, as a kubelet asks for name:tag.
		run(t, ctr, "--address", addr, "--namespace", "upstream", "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", im.source+":"+im.tag)
	}

	// dnf installs from the generated .repo file, gpgcheck on, the key
	// fetched from the served tree.
	installRoot, cache := t.TempDir(), t.TempDir()
	out := run(t, dnf, "-y", "--installroot", installRoot, "--releasever", "7", "--setopt=reposdir="+filepath.Join(root, "etc/yum.repos.d"),
		"--setopt=cachedir="+cache, "--setopt=install_weak_deps=False", "--setopt=gpgcheck=1", "install", "alpha")
	if q := run(t, "rpm", "--root", installRoot, "-q", "alpha", "beta", "gamma"); bytes.Contains(q, []byte("not installed")) {
		t.Fatalf("dnf install: %s\n%s", q, out)
	}
	repoFile, _ := os.ReadFile(filepath.Join(root, "etc/yum.repos.d/metalk8s-metalk8s-2.0.0-metalk8s-epel.repo"))
	if !bytes.Contains(repoFile, []byte("gpgcheck=1\n")) || !bytes.Contains(repoFile, []byte("baseurl=http://"+opts.Listen+"/metalk8s-2.0.0/metalk8s-epel/\n")) {
		t.Errorf("repo file:\n%s", repoFile)
	}

	// Twice: nothing changes, nginx is not reloaded.
	tx2, res2 := apply(t, root, archivesOf(mk, sol), opts)
	if tx2.Changed() || res2.Reloaded || res2.Started || res2.ConfigChanged {
		var b bytes.Buffer
		tx2.Print(&b)
		t.Fatalf("second apply changed something: %+v\n%s", res2, b.String())
	}
	if pid2, _ := runningPid(change.New(root, false)); pid2 != pid {
		t.Fatalf("nginx pid %d, was %d", pid2, pid)
	}

	// Without the Solution: its images answer 404, MetalK8s' still serve.
	_, res3 := apply(t, root, archivesOf(mk), opts)
	if !res3.Reloaded {
		t.Fatalf("removing an archive: %+v", res3)
	}
	for _, im := range sol.images {
		waitStatus(t, manifestURL(opts, sol.Repository(), im), http.StatusNotFound)
	}
	for _, im := range mk.images {
		if code, _ := get(t, manifestURL(opts, mk.Repository(), im)); code != http.StatusOK {
			t.Errorf("%s: %d after removing the other archive", manifestURL(opts, mk.Repository(), im), code)
		}
	}
}

// childUIDs returns the real uids of pid's child processes, from /proc.
func childUIDs(t *testing.T, pid int) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/status")
	var uids []string
	for _, d := range dirs {
		data, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		var ppid, uid string
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "PPid:" {
				ppid = f[1]
			} else if len(f) >= 2 && f[0] == "Uid:" {
				uid = f[1]
			}
		}
		if ppid == fmt.Sprint(pid) {
			uids = append(uids, uid)
		}
	}
	return uids
}

// TestFailuresKeepServing: a candidate nginx -t refuses, and an archive
// whose registry template was tampered with, both fail Apply before any
// file is touched, and the running nginx keeps serving the previous
// config. A rollback after a successful reload puts the previous config
// back and reloads it.
func TestFailuresKeepServing(t *testing.T) {
	testenv.Short(t, "runs nginx")
	root := testRoot(t)
	mk, sol := twoArchives(t, root)
	opts := testOptions(t)
	apply(t, root, archivesOf(mk, sol), opts)
	before := snapshot(t, root)
	pid, _ := runningPid(change.New(root, false))
	serving := func() {
		t.Helper()
		for _, a := range []*fixtureArchive{mk, sol} {
			for _, im := range a.images {
				if code, _ := get(t, manifestURL(opts, a.Repository(), im)); code != http.StatusOK {
					t.Errorf("%s: %d, want 200 (the previous config serving)", manifestURL(opts, a.Repository(), im), code)
				}
			}
		}
		if p, ok := runningPid(change.New(root, false)); !ok || p != pid {
			t.Errorf("nginx pid %d (running %v), want %d still running", p, ok, pid)
		}
		if after := snapshot(t, root); after != before {
			t.Errorf("files changed by a failed apply:\n%s\nwas\n%s", after, before)
		}
	}

	// nginx -t fails: the workers' user does not exist.
	bad := opts
	bad.User = "no-such-user-here"
	tx := change.New(root, false)
	_, err := Apply(context.Background(), tx, archivesOf(mk, sol), bad)
	if err == nil || !strings.Contains(err.Error(), "nginx -t refused") {
		t.Fatalf("apply with a config nginx -t refuses: %v", err)
	}
	if tx.Changed() {
		t.Fatal("a refused candidate reports changes")
	}
	serving()

	// A Solution whose template gained a location aliasing /etc.
	tampered := *sol
	dir := t.TempDir()
	run(t, "cp", "-a", sol.dir+"/.", dir)
	tmpl, _ := os.ReadFile(filepath.Join(dir, RegistryTemplate))
	os.WriteFile(filepath.Join(dir, RegistryTemplate), append(tmpl, "location /etc/ { alias /etc/; }\n"...), 0o644)
	tampered.FS = os.DirFS(dir)
	_, err = Apply(context.Background(), change.New(root, false), archivesOf(mk, &tampered), opts)
	if err == nil || !strings.Contains(err.Error(), "example-solution-1.0.0: "+RegistryTemplate+" is not the template") {
		t.Fatalf("apply with a tampered template: %v", err)
	}
	serving()

	// A successful change rolled back: the Solution comes back.
	tx = change.New(root, false)
	res, err := Apply(context.Background(), tx, archivesOf(mk), opts)
	if err != nil || !res.Reloaded {
		t.Fatalf("apply: %+v %v", res, err)
	}
	waitStatus(t, manifestURL(opts, sol.Repository(), sol.images[0]), http.StatusNotFound)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, manifestURL(opts, sol.Repository(), sol.images[0]), http.StatusOK)
	serving()

	// Without MetalK8s: the .repo and hosts.toml files written for it go,
	// a file of the same name pattern that the installer did not write
	// stays.
	foreign := filepath.Join(root, "etc/yum.repos.d/metalk8s-local.repo")
	os.WriteFile(foreign, []byte("[local]\nbaseurl=file:///srv/local\n"), 0o644)
	tx, _ = apply(t, root, archivesOf(sol), opts)
	var b bytes.Buffer
	tx.Print(&b)
	for _, p := range []string{"etc/yum.repos.d/metalk8s-metalk8s-2.0.0-metalk8s-epel.repo", "etc/containerd/certs.d/quay.mirror.invalid/hosts.toml"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil || !strings.Contains(b.String(), "removed   file /"+p) {
			t.Errorf("%s not removed with its archive:\n%s", p, b.String())
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a .repo file the installer did not write was removed: %v", err)
	}
	waitStatus(t, manifestURL(opts, mk.Repository(), mk.images[0]), http.StatusNotFound)
}

// snapshot lists the files Apply writes, with their contents' digests.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range []string{"etc"} {
		filepath.Walk(filepath.Join(root, d), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s %x %v\n", strings.TrimPrefix(p, root), sha256.Sum256(data), fi.Mode())
			return nil
		})
	}
	return b.String()
}

// TestDryRun: a dry run checks the candidate with nginx -t, reports what
// would change, and writes and starts nothing.
func TestDryRun(t *testing.T) {
	root := testRoot(t)
	_, sol := twoArchives(t, root)
	opts := testOptions(t)
	tx := change.New(root, true)
	res, err := Apply(context.Background(), tx, archivesOf(sol), opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	tx.Print(&b)
	if res.Started || !strings.Contains(b.String(), "would be added") || !strings.Contains(b.String(), "nginx started") {
		t.Fatalf("dry run: %+v\n%s", res, b.String())
	}
	for _, d := range []string{"etc", "run", "var"} {
		if _, err := os.Stat(filepath.Join(root, d)); err == nil {
			t.Errorf("dry run created %s", d)
		}
	}
	if _, ok := runningPid(change.New(root, false)); ok {
		t.Error("dry run started nginx")
	}
	opts.User = "no-such-user-here"
	if _, err := Apply(context.Background(), change.New(root, true), archivesOf(sol), opts); err == nil || !strings.Contains(err.Error(), "nginx -t refused") {
		t.Fatalf("dry run with a config nginx -t refuses: %v", err)
	}
}
