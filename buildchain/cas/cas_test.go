package cas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPut(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	data := []byte("hello")
	d := Digest(data)
	for _, tc := range []struct {
		digest string
		size   int64
		body   string
		want   string
	}{
		{d, 5, "hellO", "digest mismatch"},
		{d, 4, "hello", "size mismatch: want 4 bytes, got 5"},
		{d, 5, "hello, world", "size mismatch: want 5 bytes, got 6"}, // overlong: cut at size+1
		{"sha256:../../escape", -1, "x", "is not a sha256"},
		{"sha256:" + strings.Repeat("A", 64), -1, "x", "is not a sha256"},
		{"md5:" + strings.Repeat("0", 64), -1, "x", "is not a sha256"},
	} {
		_, err := s.Put(tc.digest, tc.size, strings.NewReader(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Put(%s, %d, %q) = %v, want %q", tc.digest, tc.size, tc.body, err, tc.want)
		}
	}
	// Nothing half-written or misnamed is left behind.
	if ents, _ := os.ReadDir(filepath.Join(s.Dir, "sha256")); len(ents) != 0 {
		t.Fatalf("refused content left %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Dir(s.Dir)); len(ents) != 1 {
		t.Fatalf("a digest with .. wrote outside the store: %v", ents)
	}
	if n, err := s.Put(d, 5, strings.NewReader("hello")); err != nil || n != 5 || !s.Has(d, 5) || s.Has(d, 6) || !s.Has(d, -1) {
		t.Fatalf("Put: %d %v", n, err)
	}
	st, _ := os.Stat(s.Path(d))
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode())
	}
	// An entry is never replaced: what links to it keeps its inode.
	if err := s.PutBytes(d, data); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(s.Path(d))
	if !os.SameFile(st, st2) {
		t.Error("a second Put replaced the entry")
	}
	if s.Has("sha256:../x", -1) {
		t.Error("Has accepted a digest with ..")
	}
}

func TestAdopt(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	part := filepath.Join(s.Dir, "partial")
	os.MkdirAll(part, 0o755)
	write := func(name, body string) string {
		p := filepath.Join(part, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d := Digest([]byte("package"))

	// A download with other content is removed, not retried from.
	p := write("a", "packagE")
	var de *DigestError
	if err := s.Adopt(d, -1, p, nil); !errors.As(err, &de) || de.Want != d {
		t.Fatalf("Adopt of wrong content: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) || s.Has(d, -1) {
		t.Fatal("wrong content kept")
	}
	// The check (a signature) can refuse it too.
	p = write("b", "package")
	refused := errors.New("unsigned")
	if err := s.Adopt(d, 7, p, func(string) error { return refused }); err != refused {
		t.Fatalf("refused by check: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) || s.Has(d, -1) {
		t.Fatal("refused content kept")
	}
	// Good content moves in without a copy, readable by all.
	p = write("c", "package")
	before, _ := os.Stat(p)
	if err := s.Adopt(d, 7, p, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(s.Path(d))
	if err != nil || !os.SameFile(before, after) || after.Mode().Perm() != 0o644 {
		t.Fatalf("adopted: %v %v", after, err)
	}
	if st := after.Sys().(*syscall.Stat_t); st.Nlink != 1 {
		t.Errorf("partial file still linked: nlink %d", st.Nlink)
	}
	// A second download of the same content leaves the entry as it is.
	p = write("d", "package")
	if err := s.Adopt(d, 7, p, nil); err != nil {
		t.Fatal(err)
	}
	again, _ := os.Stat(s.Path(d))
	if !os.SameFile(after, again) {
		t.Error("Adopt replaced an entry")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("partial file left")
	}
}
