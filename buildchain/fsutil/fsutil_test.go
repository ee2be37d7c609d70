package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteWithFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old"), 0o644)
	err := WriteWith(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return errors.New("interrupted")
	})
	if err == nil {
		t.Fatal("want error")
	}
	if data, _ := os.ReadFile(p); string(data) != "old" {
		t.Fatalf("final path changed to %q", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp litter left: %v", entries)
	}
}

func TestPublishDirReplaces(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "img")
	for _, content := range []string{"v1", "v2"} {
		tmp, err := TempDir(final)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, "f"), []byte(content), 0o644)
		if err := PublishDir(tmp, final); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(filepath.Join(final, "f")); string(data) != content {
			t.Fatalf("got %q", data)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("litter: %v", entries)
	}
}

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir); err == nil || !strings.Contains(err.Error(), "another build is running") {
		t.Fatalf("second lock: %v", err)
	}
	l.Unlock()
	l2, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	l2.Unlock()
}

func TestLinkOrCopyAndRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a")
	os.WriteFile(src, []byte("x"), 0o644)
	dst := filepath.Join(dir, "b")
	if err := LinkOrCopy(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(src)
	b, _ := os.Stat(dst)
	if !os.SameFile(a, b) {
		t.Fatal("not linked")
	}
	os.MkdirAll(filepath.Join(dir, "sub", TempPrefix+"x"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", TempPrefix+"y"), nil, 0o644)
	if err := RemoveTemps(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
}

func TestCreateWithNeverReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "blob")
	write := func(s string) error {
		return CreateWith(p, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, s); return err })
	}
	if err := write("first"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if err := write("second"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	if data, _ := os.ReadFile(p); string(data) != "first" || !os.SameFile(before, after) {
		t.Fatalf("existing entry replaced: %q", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("litter: %v", entries)
	}
}

// withUmask runs fn under a restrictive umask, as a user with umask 077
// would build. The umask is process-wide: these tests do not run in parallel.
func withUmask(t *testing.T, mask int, fn func()) {
	t.Helper()
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	fn()
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// A published tree is readable by others: os.MkdirTemp's 0700 once made
// every images/<name>/<version>/ directory unreadable to nginx workers.
func TestPublishDirModes(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "images", "app", "1.0")
	withUmask(t, 0o077, func() {
		tmp, err := TempDir(final)
		if err != nil {
			t.Fatal(err)
		}
		if m := mode(t, tmp); m != 0o755 {
			t.Errorf("TempDir: mode %o, want 755", m)
		}
		os.MkdirAll(filepath.Join(tmp, "sub", "deeper"), 0o700)
		os.WriteFile(filepath.Join(tmp, "manifest.json"), []byte("{}"), 0o600)
		os.WriteFile(filepath.Join(tmp, "sub", "tool"), []byte("#!/bin/sh\n"), 0o700)
		os.WriteFile(filepath.Join(tmp, "sub", "world-writable"), nil, 0o666)
		os.WriteFile(filepath.Join(tmp, "sub", "setuid"), nil, 0o755)
		os.Chmod(filepath.Join(tmp, "sub", "setuid"), 0o755|os.ModeSetuid)
		os.Symlink("manifest.json", filepath.Join(tmp, "link"))
		if err := PublishDir(tmp, final); err != nil {
			t.Fatal(err)
		}
	})
	for rel, want := range map[string]os.FileMode{
		"images":                            0o755, // made by TempDir's MkdirAll
		"images/app":                        0o755,
		"images/app/1.0":                    0o755,
		"images/app/1.0/sub":                0o755,
		"images/app/1.0/sub/deeper":         0o755,
		"images/app/1.0/manifest.json":      0o644,
		"images/app/1.0/sub/tool":           0o755,
		"images/app/1.0/sub/world-writable": 0o644,
		"images/app/1.0/sub/setuid":         0o755,
	} {
		if m := mode(t, filepath.Join(dir, rel)); m != want {
			t.Errorf("%s: mode %o, want %o", rel, m, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(final, "link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink not kept: %v", err)
	}
}

// The atomic writes set the mode they are asked for, whatever the umask.
func TestWriteFileModeIgnoresUmask(t *testing.T) {
	dir := t.TempDir()
	withUmask(t, 0o077, func() {
		for _, perm := range []os.FileMode{0o644, 0o755, 0o600} {
			p := filepath.Join(dir, "new", "dir", perm.String())
			if err := WriteFile(p, []byte("x"), perm); err != nil {
				t.Fatal(err)
			}
			if m := mode(t, p); m != perm {
				t.Errorf("WriteFile(%o): mode %o", perm, m)
			}
		}
		if err := CreateWith(filepath.Join(dir, "blob"), 0o644, func(w io.Writer) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	for rel, want := range map[string]os.FileMode{"new": 0o755, "new/dir": 0o755, "blob": 0o644} {
		if m := mode(t, filepath.Join(dir, rel)); m != want {
			t.Errorf("%s: mode %o, want %o", rel, m, want)
		}
	}
}
