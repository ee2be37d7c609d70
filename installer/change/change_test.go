package change

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteIdempotentAndReported(t *testing.T) {
	root := t.TempDir()
	tx := New(root, false)
	if ch, err := tx.WriteFile("/etc/metalk8s/a.conf", []byte("one\n"), 0o644); err != nil || !ch {
		t.Fatalf("first write: changed=%v err=%v", ch, err)
	}
	fi, err := os.Stat(filepath.Join(root, "etc/metalk8s/a.conf"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("written file: %v %v", fi, err)
	}
	if d, _ := os.Stat(filepath.Join(root, "etc/metalk8s")); d.Mode().Perm() != 0o755 {
		t.Fatalf("parent dir mode %v, want 0755", d.Mode().Perm())
	}
	tx2 := New(root, false)
	if ch, err := tx2.WriteFile("/etc/metalk8s/a.conf", []byte("one\n"), 0o644); err != nil || ch {
		t.Fatalf("second write: changed=%v err=%v", ch, err)
	}
	if tx2.Changed() {
		t.Fatal("second run reports a change")
	}
	var out bytes.Buffer
	tx2.Print(&out)
	if !strings.Contains(out.String(), "no changes") {
		t.Fatalf("report %q does not say no changes", out.String())
	}
	// A mode change alone is a change.
	tx3 := New(root, false)
	if ch, _ := tx3.WriteFile("/etc/metalk8s/a.conf", []byte("one\n"), 0o600); !ch {
		t.Fatal("mode change not reported")
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	root := t.TempDir()
	tx := New(root, true)
	if ch, err := tx.WriteFile("/etc/x", []byte("x"), 0o644); err != nil || !ch {
		t.Fatalf("dry write: %v %v", ch, err)
	}
	if err := tx.MkdirAll("/srv/scality/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run created files: %v", err)
	}
	var out bytes.Buffer
	tx.Print(&out)
	if !strings.Contains(out.String(), "would be added") {
		t.Fatalf("dry report %q", out.String())
	}
}

func TestRollbackRestoresEverything(t *testing.T) {
	root := t.TempDir()
	keep := filepath.Join(root, "etc/keep.conf")
	gone := filepath.Join(root, "etc/gone.conf")
	os.MkdirAll(filepath.Dir(keep), 0o755)
	os.WriteFile(keep, []byte("old"), 0o640)
	os.Chmod(keep, 0o640)
	os.WriteFile(gone, []byte("removed later"), 0o644)

	tx := New(root, false)
	tx.WriteFile("/etc/keep.conf", []byte("new"), 0o644)
	tx.WriteFile("/etc/new.conf", []byte("new"), 0o644)
	tx.Remove("/etc/gone.conf")
	if err := tx.MkdirAll("/srv/scality/a/b"); err != nil {
		t.Fatal(err)
	}
	var order []string
	tx.OnRollback(func() error { order = append(order, "first"); return nil })
	tx.OnRollback(func() error { order = append(order, "second"); return errors.New("umount failed") })
	err := tx.Rollback()
	if err == nil || !strings.Contains(err.Error(), "umount failed") {
		t.Fatalf("rollback error %v, want the failing step's", err)
	}
	if strings.Join(order, ",") != "second,first" {
		t.Fatalf("undo order %v", order)
	}
	if b, _ := os.ReadFile(keep); string(b) != "old" {
		t.Fatalf("keep.conf = %q", b)
	}
	if fi, _ := os.Stat(keep); fi.Mode().Perm() != 0o640 {
		t.Fatalf("keep.conf mode %v", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(gone); string(b) != "removed later" {
		t.Fatalf("gone.conf not restored: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/new.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("new.conf left after rollback")
	}
	if _, err := os.Stat(filepath.Join(root, "srv")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("created directories left after rollback")
	}
	if tx.Changed() {
		t.Fatal("report keeps rolled-back changes")
	}
}

func TestRefusesNonRegular(t *testing.T) {
	root := t.TempDir()
	os.Symlink("/etc/passwd", filepath.Join(root, "link"))
	tx := New(root, false)
	if _, err := tx.WriteFile("/link", []byte("x"), 0o644); err == nil {
		t.Fatal("writing through a symlink was accepted")
	}
	if b, _ := os.Readlink(filepath.Join(root, "link")); b != "/etc/passwd" {
		t.Fatal("symlink changed")
	}
}

func TestPathStaysUnderRoot(t *testing.T) {
	tx := New("/tmp/r", false)
	for in, want := range map[string]string{"/etc/a": "/tmp/r/etc/a", "../../etc/a": "/tmp/r/etc/a", "/srv/../../x": "/tmp/r/x"} {
		if got := tx.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
	if got := New("/", false).Path("/etc/a"); got != "/etc/a" {
		t.Errorf("host root: %q", got)
	}
}
