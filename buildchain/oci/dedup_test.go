package oci

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestDedupPrefixFilter checks that Dedup links exactly the identical
// files, and reads whole only the same-size files whose first bytes agree.
func TestDedupPrefixFilter(t *testing.T) {
	root := t.TempDir()
	size := dedupPrefix * 3
	base := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	variant := func(at int, c byte) []byte {
		b := bytes.Clone(base)
		b[at] = c
		return b
	}
	files := map[string][]byte{
		"a/same1":      base,
		"b/same2":      base,                        // identical to same1: linked
		"c/headdiff":   variant(10, 'X'),            // differs in the prefix: never read whole
		"d/taildiff":   variant(size-1, 'Y'),        // same prefix, differs at the end: read whole, kept
		"e/taildiff2":  variant(size-1, 'Y'),        // identical to taildiff: linked
		"f/small1":     []byte("tiny"),              // small identical files: linked
		"g/small2":     []byte("tiny"),              //
		"h/other-size": base[:size-16],              // a size of its own: never hashed
		"i/headdiff2":  variant(dedupPrefix-1, 'Z'), // last byte of the prefix differs
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var read []string
	fullHash = func(p string) ([32]byte, error) {
		rel, _ := filepath.Rel(root, p)
		read = append(read, rel)
		return hashFile(p)
	}
	defer func() { fullHash = hashFile }()

	st, err := Dedup(root)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != len(files) || st.Linked != 3 {
		t.Errorf("stats %+v, want %d files and 3 new links", st, len(files))
	}
	var logical int64
	for _, d := range files {
		logical += int64(len(d))
	}
	// Unique: base, headdiff, taildiff, headdiff2 (size each), tiny, other-size.
	if want := int64(4*size + 4 + size - 16); st.UniqueSize != want || st.LogicalSize != logical {
		t.Errorf("unique %d logical %d, want %d and %d", st.UniqueSize, st.LogicalSize, want, logical)
	}
	for _, pair := range [][2]string{{"a/same1", "b/same2"}, {"d/taildiff", "e/taildiff2"}, {"f/small1", "g/small2"}} {
		if inodeOf(t, filepath.Join(root, pair[0])) != inodeOf(t, filepath.Join(root, pair[1])) {
			t.Errorf("%s and %s are identical but not linked", pair[0], pair[1])
		}
	}
	for _, other := range []string{"c/headdiff", "d/taildiff", "h/other-size", "i/headdiff2"} {
		if inodeOf(t, filepath.Join(root, other)) == inodeOf(t, filepath.Join(root, "a/same1")) {
			t.Errorf("%s was linked to a different file", other)
		}
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s changed content (%v)", name, err)
		}
	}
	for _, r := range read {
		if r == "c/headdiff" || r == "i/headdiff2" || r == "h/other-size" {
			t.Errorf("%s was read whole, though its first bytes or its size differ from every other file", r)
		}
	}
	if len(read) != 6 {
		t.Errorf("read whole %v, want the 6 files whose size and first bytes agree with another's", read)
	}

	// A second pass links nothing more; it still reads whole the two
	// different files (one inode each now) that share their first bytes.
	read = nil
	st2, err := Dedup(root)
	if err != nil || st2.Linked != 0 || st2.UniqueSize != st.UniqueSize {
		t.Errorf("second pass %+v %v", st2, err)
	}
	if len(read) != 2 {
		t.Errorf("second pass read %v whole, want one path of base and one of taildiff", read)
	}
}
