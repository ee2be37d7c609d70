package repogen_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/rpmpack"

	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
)

// writeRPM writes a small package built with rpmpack (rpmbuild would be
// too slow for the hundreds an index test needs).
func writeRPM(t testing.TB, dir, name, release string, files int) {
	t.Helper()
	p, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: name, Version: "1.0", Release: release, Arch: "x86_64", Summary: "s", Licence: "MIT", BuildTime: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for f := 0; f < files; f++ {
		p.AddFile(rpmpack.RPMFile{Name: fmt.Sprintf("/usr/share/%s/f%d", name, f), Body: []byte(name + release), Mode: 0o100644, MTime: 1700000000})
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-1.0-%s.x86_64.rpm", name, release))
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1600000000, 0)
	os.Chtimes(path, old, old)
}

// TestIncrementalFromIndex checks, over enough packages for many chunks,
// that every kind of change made with --update gives byte for byte what a
// full run gives, and that only the changed packages are read: a package
// replaced near the start (the open-checksum resumes early), one near the
// end (resumes late), one added and one removed (the package count in
// every document's first part changes, nothing resumes), and a damaged
// index (a package it misdescribes is read again; an unreadable one is
// ignored and the old documents are read instead).
func TestIncrementalFromIndex(t *testing.T) {
	inc := t.TempDir()
	for i := 0; i < 160; i++ {
		writeRPM(t, inc, fmt.Sprintf("p%03d", i), "1", 1+i%7)
	}
	generate(t, inc, repogen.Options{})
	check := func(what string, wantRead int) {
		t.Helper()
		st := generate(t, inc, repogen.Options{Incremental: true})
		if st.Read != wantRead {
			t.Errorf("%s: %+v, want %d read", what, st, wantRead)
		}
		full := t.TempDir()
		ents, _ := os.ReadDir(inc)
		for _, e := range ents {
			if filepath.Ext(e.Name()) == ".rpm" {
				if err := os.Link(filepath.Join(inc, e.Name()), filepath.Join(full, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		generate(t, full, repogen.Options{})
		if a, b := repodataFiles(t, inc), repodataFiles(t, full); !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: incremental result differs from a full run: %v vs %v", what, keys(a), keys(b))
		}
	}
	replace := func(i int, rel string) {
		os.Remove(filepath.Join(inc, fmt.Sprintf("p%03d-1.0-1.x86_64.rpm", i)))
		writeRPM(t, inc, fmt.Sprintf("p%03d", i), rel, 3)
	}
	replace(5, "2")
	check("replaced near the start", 1)
	replace(155, "2")
	check("replaced near the end", 1)
	check("nothing changed", 0)
	writeRPM(t, inc, "p080a", "1", 2)
	check("added", 1)
	os.Remove(filepath.Join(inc, "p100-1.0-1.x86_64.rpm"))
	check("removed", 0)
	// Same href, new content and mtime.
	writeRPM(t, inc, "p120", "1", 9)
	now := time.Unix(1650000000, 0)
	os.Chtimes(filepath.Join(inc, "p120-1.0-1.x86_64.rpm"), now, now)
	check("rewritten in place", 1)

	ix := filepath.Join(inc, "repodata", "repogen-index.txt")
	data, err := os.ReadFile(ix)
	if err != nil {
		t.Fatal(err)
	}
	// The first package's line: "<pkgid> <size> <time> <href>".
	i := bytes.Index(data, []byte("\npackages "))
	i += bytes.IndexByte(data[i+1:], '\n') + 2 + 64 + 1
	os.WriteFile(ix, append(append(data[:i:i], '1'), data[i:]...), 0o644)
	// A wrong size in the index makes that package (p000) look changed:
	// it is read again, never reused on the index's word alone.
	replace(6, "2")
	check("damaged index", 2)
	os.WriteFile(ix, []byte("{"), 0o644)
	check("unreadable index", 0)
}
