package archive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/mount"
)

const serveEnv = "ARCHIVE_TEST_FUSE_SERVE"

// TestMain lets the test binary be the FUSE server child, as the
// installer's hidden fuse-serve subcommand is.
func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		if err := mount.ServeFUSE(os.Args[1], os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestAddAndRemove is `archive add` steps 1-5 and `archive remove` on a
// signed ISO, mounted through the installer's own FUSE server, twice.
func TestAddAndRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	k := rpmtest.GPGKey(t, "iarch", "ed25519")
	src, isoPath := build(t, fixture{signWith: k})
	root := t.TempDir()
	mp := filepath.Join(root, "srv/scality/metalk8s-2.0.0")
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
	self, _ := os.Executable()
	mo := mount.Options{Method: mount.FUSE, FUSECommand: []string{"/usr/bin/env", serveEnv + "=1", self}}
	uo := mount.UnitOptions{Installer: "/usr/bin/metalk8s-installer"}
	unit := filepath.Join(root, mount.UnitDir, mount.ServiceUnitName("/srv/scality/metalk8s-2.0.0"))

	add := func() *change.Tx {
		t.Helper()
		a, err := Open(isoPath, Options{Keys: keys(t, k)})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		tx := change.New(root, false)
		if m, err := a.Mount(tx, mo, uo); err != nil || m != mount.FUSE {
			t.Fatalf("Mount: %s %v", m, err)
		}
		return tx
	}
	if tx := add(); !tx.Changed() {
		t.Fatal("first add changed nothing")
	}
	for _, f := range []string{"product.txt", "salt/top.sls", "packages/redhat/a/x.rpm"} {
		want, _ := os.ReadFile(filepath.Join(src, f))
		if got, err := os.ReadFile(filepath.Join(mp, f)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s through the mount: %v", f, err)
		}
	}
	if b, err := os.ReadFile(unit); err != nil || !strings.Contains(string(b), isoPath) {
		t.Fatalf("unit: %v\n%s", err, b)
	}
	if tx := add(); tx.Changed() {
		var out bytes.Buffer
		tx.Print(&out)
		t.Fatalf("second add changed something:\n%s", out.String())
	}

	remove := func() *change.Tx {
		t.Helper()
		a, err := Open(isoPath, Options{Keys: keys(t, k), SkipFileCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		tx := change.New(root, false)
		if err := a.Unmount(tx, mo); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	if tx := remove(); !tx.Changed() {
		t.Fatal("remove changed nothing")
	}
	if cur, _ := mount.Current(mp); cur != nil {
		t.Fatalf("still mounted: %+v", cur)
	}
	if _, err := os.Stat(unit); err == nil {
		t.Fatal("unit left after remove")
	}
	if _, err := os.Stat(mp); err == nil {
		t.Fatal("mount point directory left after remove")
	}
	if tx := remove(); tx.Changed() {
		t.Fatal("second remove changed something")
	}
}

func TestAddDryRun(t *testing.T) {
	_, isoPath := build(t, fixture{})
	a, err := Open(isoPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	root := t.TempDir()
	tx := change.New(root, true)
	if _, err := a.Mount(tx, mount.Options{}, mount.UnitOptions{Installer: "/usr/bin/metalk8s-installer"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tx.Print(&out)
	if !strings.Contains(out.String(), "mount /srv/scality/metalk8s-2.0.0") || !strings.Contains(out.String(), "would be added") {
		t.Fatalf("dry-run report:\n%s", out.String())
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("dry run wrote under the root: %v", ents)
	}
}
