package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/installer/change"
)

// serveEnv makes the test binary the FUSE server child (what the
// installer's hidden fuse-serve subcommand does).
const serveEnv = "MOUNT_TEST_FUSE_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(guestEnv) == "1" {
		guestMain()
		os.Exit(0)
	}
	if os.Getenv(serveEnv) == "1" {
		if err := ServeFUSE(os.Args[1], os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testOptions(m Method) Options {
	self, _ := os.Executable()
	return Options{Method: m, FUSECommand: []string{"/usr/bin/env", serveEnv + "=1", self}}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
}

func needFUSE(t *testing.T) {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// kernelHasISO9660: this host's kernel may be built without isofs (and
// have no module for it); the kernel method is then proven under qemu.
func kernelHasISO9660() bool {
	b, _ := os.ReadFile("/proc/filesystems")
	return bytes.Contains(b, []byte("\tiso9660\n"))
}

// tree writes a small archive-like source tree: nested directories,
// modes, an executable, a symlink and a file spanning several sectors.
func tree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	files := map[string]string{
		"product.txt":                 "NAME=MetalK8s\nVERSION=2.0.0\n",
		"bootstrap.sh":                "#!/bin/sh\necho bootstrap\n",
		"packages/redhat/a/x.rpm":     strings.Repeat("rpm", 3000),
		"images/alpha/1.0/index.json": `{"schemaVersion":2}`,
		"salt/top.sls":                "base: {}\n",
		"empty":                       "",
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(src, "bootstrap.sh"), 0o755)
	os.Chmod(filepath.Join(src, "salt/top.sls"), 0o600)
	if err := os.Symlink("packages/redhat/a/x.rpm", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	return src
}

func writeISO(t *testing.T, src, name, volumeID string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if _, err := iso.Write(context.Background(), out, src, iso.ProductOptions(volumeID, time.Unix(1700000000, 0))); err != nil {
		t.Fatal(err)
	}
	return out
}

func writeISOTB(t testing.TB, src, out string) {
	t.Helper()
	if _, err := iso.Write(context.Background(), out, src, iso.ProductOptions("MetalK8s 2.0.0", time.Unix(1700000000, 0))); err != nil {
		t.Fatal(err)
	}
}

// lazyUnmount always runs, even after a failed assertion.
func lazyUnmount(t *testing.T, target string) {
	t.Cleanup(func() {
		for i := 0; i < 4; i++ {
			if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
				return
			}
		}
	})
}

// compareTree reads every file of src back through the mount.
func compareTree(t *testing.T, src, mnt string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		got := filepath.Join(mnt, rel)
		wfi, _ := os.Lstat(p)
		gfi, err := os.Lstat(got)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if wfi.Mode().Type() != gfi.Mode().Type() {
			t.Errorf("%s: type %v through the mount, %v in the source", rel, gfi.Mode().Type(), wfi.Mode().Type())
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			w, _ := os.Readlink(p)
			if g, err := os.Readlink(got); err != nil || g != w {
				t.Errorf("%s: link to %q (%v), want %q", rel, g, err, w)
			}
		case d.Type().IsRegular():
			n++
			w, _ := os.ReadFile(p)
			if g, err := os.ReadFile(got); err != nil || !bytes.Equal(g, w) {
				t.Errorf("%s: content differs through the mount (%v)", rel, err)
			}
			if wfi.Mode().Perm() != gfi.Mode().Perm() {
				t.Errorf("%s: mode %v through the mount, want %v", rel, gfi.Mode().Perm(), wfi.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("compared only %d files", n)
	}
}

// TestFUSEServerPassesTestFS mounts the ISO in this process through the
// go-fuse server and runs fstest.TestFS on the mount as the kernel shows it.
func TestFUSEServerPassesTestFS(t *testing.T) {
	needFUSE(t)
	src := tree(t)
	isoPath := writeISO(t, src, "a.iso", "MetalK8s 2.0.0")
	mnt := t.TempDir()
	// t.TempDir's parent is 0700: let nobody reach the mount.
	os.Chmod(filepath.Dir(mnt), 0o755)
	srv, err := MountFUSE(isoPath, mnt)
	if err != nil {
		t.Fatal(err)
	}
	lazyUnmount(t, mnt)
	t.Cleanup(func() { srv.Unmount() })

	if err := fstest.TestFS(os.DirFS(mnt), "product.txt", "bootstrap.sh", "packages/redhat/a/x.rpm", "images/alpha/1.0/index.json", "salt/top.sls", "empty", "link"); err != nil {
		t.Fatal(err)
	}
	compareTree(t, src, mnt)
	cur, err := Current(mnt)
	if err != nil || cur == nil || cur.Method != FUSE || !cur.SameSource(isoPath, mnt) {
		t.Fatalf("Current = %+v, %v; want the FUSE mount of %s", cur, err, isoPath)
	}
	// Read-only, whatever the modes say.
	if err := os.WriteFile(filepath.Join(mnt, "bootstrap.sh"), []byte("x"), 0o755); err == nil {
		t.Fatal("wrote through the read-only mount")
	}
	if err := os.Mkdir(filepath.Join(mnt, "new"), 0o755); err == nil {
		t.Fatal("created a directory on the read-only mount")
	}
	// Modes are the kernel's to enforce: salt/top.sls is 0600 root's.
	if out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", filepath.Join(mnt, "salt/top.sls")).CombinedOutput(); err == nil {
		t.Fatalf("nobody read a 0600 file: %s", out)
	}
	if out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", filepath.Join(mnt, "product.txt")).CombinedOutput(); err != nil || !strings.Contains(string(out), "NAME=MetalK8s") {
		t.Fatalf("nobody (as nginx workers) cannot read product.txt: %v %s", err, out)
	}
}

// TestEnsureEachMethod mounts through Ensure by every method this host
// supports, reads the tree back, checks idempotence and removal.
func TestEnsureEachMethod(t *testing.T) {
	needFUSE(t)
	src := tree(t)
	isoPath := writeISO(t, src, "metalk8s.iso", "MetalK8s 2.0.0")
	for _, m := range []Method{Kernel, FUSE, FuseISO, Auto} {
		t.Run(string(m), func(t *testing.T) {
			if m == Kernel && !kernelHasISO9660() {
				t.Skip("this kernel has no iso9660 file system; TestKernelMissingISO9660 covers the error and the fallback")
			}
			if m == FuseISO {
				if _, err := exec.LookPath("fuseiso"); err != nil {
					t.Skip("fuseiso is not installed (hostdeps installs it)")
				}
			}
			root := t.TempDir()
			target := "/srv/scality/metalk8s-2.0.0"
			real := filepath.Join(root, target)
			lazyUnmount(t, real)
			tx := change.New(root, false)
			got, err := Ensure(tx, isoPath, target, testOptions(m))
			if err != nil {
				t.Fatal(err)
			}
			if m != Auto && got != m {
				t.Fatalf("mounted by %s, asked %s", got, m)
			}
			if !tx.Changed() {
				t.Fatal("first mount reports no change")
			}
			compareTree(t, src, real)

			tx2 := change.New(root, false)
			again, err := Ensure(tx2, isoPath, target, testOptions(m))
			if err != nil || again != got || tx2.Changed() {
				t.Fatalf("second Ensure: %s %v, changed=%v", again, err, tx2.Changed())
			}
			// Through a symlink-free other name of the same file: same source.
			other := filepath.Join(t.TempDir(), "hardlink.iso")
			if err := os.Link(isoPath, other); err == nil {
				if _, err := Ensure(change.New(root, false), other, target, testOptions(m)); err != nil {
					t.Errorf("a hard link to the mounted ISO is the same source: %v", err)
				}
			}

			rm := change.New(root, false)
			if err := Remove(rm, isoPath, target, testOptions(m)); err != nil {
				t.Fatal(err)
			}
			if cur, _ := Current(real); cur != nil {
				t.Fatalf("still mounted after Remove: %+v", cur)
			}
			// Rolling the removal back mounts it again.
			if err := rm.Rollback(); err != nil {
				t.Fatal(err)
			}
			if cur, _ := Current(real); cur == nil || !cur.SameSource(isoPath, real) {
				t.Fatalf("rollback of Remove did not mount it again: %+v", cur)
			}
			// Rolling the first Ensure back unmounts.
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if cur, _ := Current(real); cur != nil {
				t.Fatalf("still mounted after rollback: %+v", cur)
			}
		})
	}
}

// TestKernelMissingISO9660: where the kernel has no iso9660, the kernel
// method fails saying so, releases its loop device, and auto falls back.
func TestKernelMissingISO9660(t *testing.T) {
	needFUSE(t)
	if kernelHasISO9660() {
		t.Skip("this kernel has iso9660: TestEnsureEachMethod/kernel mounts through it")
	}
	isoPath := writeISO(t, tree(t), "k.iso", "MetalK8s 2.0.0")
	target := t.TempDir()
	err := kernelMounter{}.Mount(isoPath, target)
	if err == nil || !strings.Contains(err.Error(), "no iso9660") {
		t.Fatalf("kernel mount: %v, want the missing iso9660 named", err)
	}
	// The loop device auto-clears: no loop device still holds the ISO.
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, b := range backing {
		if data, _ := os.ReadFile(b); strings.TrimSpace(string(data)) == isoPath {
			t.Errorf("%s still holds %s", b, isoPath)
		}
	}
	root := t.TempDir()
	lazyUnmount(t, filepath.Join(root, "srv/scality/metalk8s-2.0.0"))
	m, err := Ensure(change.New(root, false), isoPath, "/srv/scality/metalk8s-2.0.0", testOptions(Auto))
	if err != nil || m != FUSE {
		t.Fatalf("auto: %s %v, want the FUSE fallback", m, err)
	}
	_, err = Ensure(change.New(t.TempDir(), false), isoPath, "/srv/scality/x-1", testOptions(Kernel))
	if err == nil || !strings.Contains(err.Error(), "kernel: ") {
		t.Fatalf("forced kernel: %v", err)
	}
}

func TestAlreadyMountedElsewhere(t *testing.T) {
	needFUSE(t)
	a := writeISO(t, tree(t), "a.iso", "MetalK8s 2.0.0")
	b := writeISO(t, tree(t), "b.iso", "MetalK8s 2.0.0")
	root := t.TempDir()
	target := "/srv/scality/metalk8s-2.0.0"
	lazyUnmount(t, filepath.Join(root, target))
	if _, err := Ensure(change.New(root, false), a, target, testOptions(FUSE)); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(change.New(root, false), b, target, testOptions(FUSE))
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("mounting b over a: %v, want an error naming both", err)
	}
	if err := Remove(change.New(root, false), b, target, testOptions(FUSE)); err == nil {
		t.Fatal("Remove of b unmounted a")
	}
	if cur, _ := Current(filepath.Join(root, target)); cur == nil || !cur.SameSource(a, filepath.Join(root, target)) {
		t.Fatal("a is no longer mounted")
	}
	// A non-empty mount point is refused, not hidden.
	root2 := t.TempDir()
	os.MkdirAll(filepath.Join(root2, target), 0o755)
	os.WriteFile(filepath.Join(root2, target, "left"), nil, 0o644)
	if _, err := Ensure(change.New(root2, false), a, target, testOptions(FUSE)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty mount point: %v", err)
	}
}

func TestDirectoryBindMount(t *testing.T) {
	needRoot(t)
	src := tree(t)
	root := t.TempDir()
	target := "/srv/scality/metalk8s-2.0.0"
	real := filepath.Join(root, target)
	lazyUnmount(t, real)
	m, err := Ensure(change.New(root, false), src, target, Options{Method: FUSE})
	if err != nil || m != Dir {
		t.Fatalf("Ensure of a directory: %s %v", m, err)
	}
	compareTree(t, src, real)
	if err := os.WriteFile(filepath.Join(real, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write through the bind mount: %v, want EROFS", err)
	}
	tx := change.New(root, false)
	if _, err := Ensure(tx, src, target, Options{}); err != nil || tx.Changed() {
		t.Fatalf("second Ensure: %v changed=%v", err, tx.Changed())
	}
	if _, err := Ensure(change.New(root, false), t.TempDir(), target, Options{}); err == nil {
		t.Fatal("another directory was accepted over the bind mount")
	}
	if err := Remove(change.New(root, false), src, target, Options{}); err != nil {
		t.Fatal(err)
	}
	if cur, _ := Current(real); cur != nil {
		t.Fatal("bind mount left")
	}
}

func TestDryRunMountsNothing(t *testing.T) {
	isoPath := writeISO(t, tree(t), "a.iso", "MetalK8s 2.0.0")
	root := t.TempDir()
	tx := change.New(root, true)
	if _, err := Ensure(tx, isoPath, "/srv/scality/metalk8s-2.0.0", Options{}); err != nil {
		t.Fatal(err)
	}
	if !tx.Changed() {
		t.Fatal("dry run reports nothing to do")
	}
	if _, err := os.Stat(filepath.Join(root, "srv")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dry run created the mount point: %v", err)
	}
}

func TestBadTargetAndMethod(t *testing.T) {
	for _, bad := range []string{"srv/x", "/srv/../etc", "/srv/x y", "/srv/x/", "/srv/$x", "/srv/x\n"} {
		if _, err := Ensure(change.New(t.TempDir(), true), "/", bad, Options{}); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	if _, err := ParseMethod("loop"); err == nil {
		t.Error("method loop accepted")
	}
	for _, s := range []string{"", "auto", "kernel", "fuse", "fuseiso"} {
		if _, err := ParseMethod(s); err != nil {
			t.Errorf("ParseMethod(%q): %v", s, err)
		}
	}
}

// TestLoopAttach: the loop device the kernel method sets up is read-only,
// backed by the ISO, serves its bytes, and clears itself when released.
func TestLoopAttach(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	isoPath := writeISO(t, tree(t), "l.iso", "MetalK8s 2.0.0")
	loop, err := attachLoop(isoPath)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.TrimPrefix(loop.Name(), "/dev/")
	t.Cleanup(func() { loop.Close() })
	if b, _ := os.ReadFile("/sys/block/" + n + "/loop/backing_file"); strings.TrimSpace(string(b)) != isoPath {
		t.Errorf("%s backs onto %q, want %s", n, b, isoPath)
	}
	if b, _ := os.ReadFile("/sys/block/" + n + "/ro"); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("%s is not read-only (ro=%q)", n, b)
	}
	want, _ := os.ReadFile(isoPath)
	got := make([]byte, len(want))
	if _, err := loop.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reading %s: %v, equal=%v", loop.Name(), err, bytes.Equal(got, want))
	}
	loop.Close()
	if b, err := os.ReadFile("/sys/block/" + n + "/loop/backing_file"); err == nil && strings.TrimSpace(string(b)) == isoPath {
		t.Errorf("%s still attached after its last user closed it", n)
	}
}

// TestServeFUSENotifiesSystemd: under a Type=notify unit the server says
// READY=1 once mounted, so the repository service starts after it.
func TestServeFUSENotifiesSystemd(t *testing.T) {
	needFUSE(t)
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	isoPath := writeISO(t, tree(t), "n.iso", "MetalK8s 2.0.0")
	root := t.TempDir()
	target := "/srv/scality/metalk8s-2.0.0"
	lazyUnmount(t, filepath.Join(root, target))
	o := testOptions(FUSE)
	o.FUSECommand = append([]string{"/usr/bin/env", "NOTIFY_SOCKET=" + sock}, o.FUSECommand[1:]...)
	if _, err := Ensure(change.New(root, false), isoPath, target, o); err != nil {
		t.Fatal(err)
	}
	// The server notified before it said it was ready: the datagram is queued.
	// The deadline only keeps a broken server from hanging the test.
	l.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 64)
	n, _, err := l.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket: %q %v", buf[:n], err)
	}
}

// TestStaleFUSEMountIsMountedAgain: a FUSE server killed leaves a mount
// nothing can read; Ensure replaces it instead of calling it unchanged.
func TestStaleFUSEMountIsMountedAgain(t *testing.T) {
	needFUSE(t)
	src := tree(t)
	isoPath := writeISO(t, src, "stale.iso", "MetalK8s 2.0.0")
	root := t.TempDir()
	target := "/srv/scality/metalk8s-2.0.0"
	real := filepath.Join(root, target)
	lazyUnmount(t, real)
	if _, err := Ensure(change.New(root, false), isoPath, target, testOptions(FUSE)); err != nil {
		t.Fatal(err)
	}
	// The server is the test binary run with this ISO and mount point.
	pid := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[len(args)-3] == isoPath && args[len(args)-2] == real {
			fmt.Sscanf(strings.TrimPrefix(p, "/proc/"), "%d", &pid)
		}
	}
	if pid == 0 {
		t.Fatal("FUSE server process not found")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait for the kernel to see the connection gone: stat fails then.
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(real, &st); err != nil {
			break
		}
		runtime.Gosched()
	}
	tx := change.New(root, false)
	if _, err := Ensure(tx, isoPath, target, testOptions(Auto)); err != nil {
		t.Fatal(err)
	}
	if !tx.Changed() {
		t.Fatal("a dead mount was reported unchanged")
	}
	compareTree(t, src, real)
}

// TestFUSEInodesStable: a path keeps its inode number, and two paths
// have two.
func TestFUSEInodesStable(t *testing.T) {
	needFUSE(t)
	isoPath := writeISO(t, tree(t), "i.iso", "MetalK8s 2.0.0")
	mnt := t.TempDir()
	srv, err := MountFUSE(isoPath, mnt)
	if err != nil {
		t.Fatal(err)
	}
	lazyUnmount(t, mnt)
	t.Cleanup(func() { srv.Unmount() })
	ino := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mnt, p), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	a, b := ino("product.txt"), ino("salt")
	if a == b {
		t.Fatalf("two entries share inode %d", a)
	}
	// Make the kernel forget the names (1 is the root's node ID), so the
	// next stat looks them up again.
	for _, n := range []string{"product.txt", "salt"} {
		if st := srv.EntryNotify(1, n); !st.Ok() {
			t.Fatalf("EntryNotify %s: %v", n, st)
		}
	}
	if ino("product.txt") != a || ino("salt") != b {
		t.Fatal("inode numbers changed on a new lookup")
	}
}
