package iso

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseDirRecords feeds arbitrary directory extents to the test-side
// reader: it must fail cleanly, never panic or loop.
func FuzzParseDirRecords(f *testing.F) {
	rec := dirRecord(nil, []byte("FILE.TXT;1"), 20, 5, 0, testEpoch, append(append(pxEntry(&inode{mode: 0o100644, nlink: 1}), nmEntries("file.txt")[0]...), ceEntry(cePos{0, 0, 28}, 0)...))
	f.Add(rec)
	f.Add(append(rec, make([]byte, sectorSize-len(rec))...))
	f.Add([]byte{34, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseDirRecords(data)
		if err != nil {
			return
		}
		read := func(lba, off, n uint32) ([]byte, error) {
			start := int64(lba)*sectorSize + int64(off)
			if start+int64(n) > int64(len(data)) {
				return nil, errTest
			}
			return data[start : start+int64(n)], nil
		}
		for _, r := range recs {
			es, err := parseSUSP(r.su, read)
			if err != nil {
				continue
			}
			decodeRR(es)
		}
	})
}

var errTest = &testErr{}

type testErr struct{}

func (*testErr) Error() string { return "out of range" }

// FuzzRockRidgeRoundTrip: any name and symlink target survive NM and SL
// encoding, in entries of at most 255 bytes packed into records that fit.
func FuzzRockRidgeRoundTrip(f *testing.F) {
	f.Add("name.txt", "../a/./b")
	f.Add(strings.Repeat("n", 255), "/"+strings.Repeat("segment/", 40)+"end")
	f.Add("é", strings.Repeat("c", 300)+"//x/")
	f.Add("x", strings.Repeat("ab/", 84)+strings.Repeat("z", 249))
	f.Fuzz(func(t *testing.T, name, target string) {
		if name == "" || len(name) > 255 || target == "" || strings.ContainsRune(target, 0) || len(target) > 4095 {
			return
		}
		var es [][]byte
		got := ""
		for _, e := range nmEntries(name) {
			if len(e) > maxEntry || int(e[2]) != len(e) {
				t.Fatalf("NM entry of %d bytes", len(e))
			}
			got += string(e[5:])
			es = append(es, e)
		}
		if got != name {
			t.Fatalf("NM round trip %q -> %q", name, got)
		}
		var body []byte
		for _, e := range slEntries(target) {
			if len(e) > maxEntry || int(e[2]) != len(e) {
				t.Fatalf("SL entry of %d bytes", len(e))
			}
			body = append(body, e[5:]...)
			es = append(es, e)
		}
		dec, err := decodeSL(body)
		if err != nil {
			t.Fatal(err)
		}
		if want := normalTarget(target); dec != want {
			t.Fatalf("SL round trip %q -> %q, want %q", target, dec, want)
		}
		parts := pack(append([][]byte{pxEntry(&inode{}), tfEntry(testEpoch)}, es...), inlineRoom(33))
		if n := partLen(parts[0]); len(parts) > 1 && n+ceLen > inlineRoom(33) || n > inlineRoom(33) {
			t.Fatalf("inline part of %d bytes", n)
		}
		for i, s := range areaSizes(parts) {
			if s > sectorSize {
				t.Fatalf("continuation area %d of %d bytes", i, s)
			}
		}
	})
}

func normalTarget(t string) string {
	var parts []string
	for _, p := range strings.Split(t, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	s := strings.Join(parts, "/")
	if strings.HasPrefix(t, "/") {
		s = "/" + s
	}
	return s
}

// FuzzNames: whatever the names, identifiers are unique, short enough and
// made of the allowed characters.
func FuzzNames(f *testing.F) {
	f.Add("Readme\nREADME\nreadme.TXT\nx.y.z\nx_y.z")
	f.Add(strings.Repeat("a", 120) + "-1\n" + strings.Repeat("a", 120) + "-2\n日本語\n😀")
	f.Fuzz(func(t *testing.T, list string) {
		dir := &node{kind: kindDir, byName: map[string]*node{}}
		for i, n := range strings.Split(list, "\n") {
			if !validName(n) || len(n) > 255 || dir.byName[n] != nil || !utf8.ValidString(n) {
				continue
			}
			k := kindFile
			if i%3 == 0 {
				k = kindDir
			}
			c := &node{name: n, kind: k, parent: dir}
			dir.byName[n] = c
			dir.children = append(dir.children, c)
		}
		assignPrimaryNames(dir)
		assignJolietNames(dir, 103)
		prim, jol := map[string]bool{}, map[string]bool{}
		for _, c := range dir.children {
			id := string(c.isoName)
			if prim[uniqueKey(id)] || jol[string(c.jName)] {
				t.Fatalf("duplicate identifier for %q", c.name)
			}
			prim[uniqueKey(id)], jol[string(c.jName)] = true, true
			base, ext := splitIdent(c.isoName)
			if c.kind == kindDir && len(id) > maxDirName || c.kind != kindDir && (len(base)+len(ext) > maxFileNameExt || !strings.HasSuffix(id, ";1")) {
				t.Fatalf("identifier %q too long", id)
			}
			for _, ch := range strings.TrimSuffix(id, ";1") {
				if !(ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.') {
					t.Fatalf("identifier %q has %q", id, ch)
				}
			}
			if len(c.jName) > 2*103 || len(c.jName) == 0 {
				t.Fatalf("Joliet name of %d bytes", len(c.jName))
			}
		}
	})
}
