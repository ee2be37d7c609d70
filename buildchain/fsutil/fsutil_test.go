package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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
