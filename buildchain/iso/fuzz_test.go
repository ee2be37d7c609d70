package iso

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"
)

// The seed corpora of these targets live in testdata/fuzz/<target>/ and
// are cut from real images (genisoimage, xorriso, mkiso) and from real
// sha256sum output by TestWriteFuzzSeeds; `go test` runs them as
// regression cases, and the fuzzer mutates them.

// FuzzParseDirRecords feeds arbitrary directory extents to the reader's
// record, SUSP and Rock Ridge parsers and to its walker: they must fail
// cleanly, never panic, loop or take time out of proportion to the input.
// The input is read as an image fragment starting at sector 0: records,
// then (after a zero byte, the padding that ends a sector's records) the
// continuation areas they point at, and any directory extent a record
// points at.
func FuzzParseDirRecords(f *testing.F) {
	rec := dirRecord(nil, []byte("FILE.TXT;1"), 20, 5, 0, testEpoch, append(append(pxEntry(&inode{mode: 0o100644, nlink: 1}), nmEntries("file.txt")[0]...), ceEntry(cePos{0, 0, 28}, 0)...))
	f.Add(rec)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, _ := dirRecords(data)
		im := &Image{r: bytes.NewReader(data), size: int64(len(data)), meta: int64(len(data))}
		for _, r := range recs {
			es, err := im.suspEntries(r.su, 0)
			if err != nil {
				continue
			}
			info, err := decodeRR(es)
			if err != nil {
				continue
			}
			if len(info.name) > MaxNameLen || len(info.target) > MaxPathLen {
				t.Fatalf("name of %d bytes, target of %d", len(info.name), len(info.target))
			}
			disagreement(r, info, r.flags&flagNotFinal != 0)
		}
		if im.meta < 0 {
			t.Fatalf("metadata budget overdrawn: %d", im.meta)
		}
		// The same bytes as the root directory of a tree with SUSP.
		im.meta = int64(len(data))
		w := &walker{im: im, seen: map[uint32]bool{0: true}}
		top := &Entry{Mode: fs.ModeDir | 0o555}
		w.dir(top, recs, 0)
		im.checkData(w, top)
		if im.meta < 0 || w.count > MaxEntries+1 {
			t.Fatalf("budget %d, %d entries", im.meta, w.count)
		}
	})
}

// amplify repeats s until it is max bytes long (s itself if rep is 0), so
// that the fuzzer reaches the long-name and long-target code paths with
// short inputs. Long raw inputs reach them too, but an input that finds
// new coverage is minimized, and Go's minimizer is quadratic in the
// input's length: a 4 KiB target that cannot shrink kept the workers
// minimizing, with no executions counted, for the whole 60 s budget.
func amplify(s string, rep uint8, max int) string {
	if rep > 0 && s != "" {
		s = strings.Repeat(s, min(int(rep)+1, max/len(s)+1))
	}
	if len(s) > max {
		s = s[:max]
	}
	return s
}

// FuzzRockRidgeRoundTrip: any name and symlink target survive NM and SL
// encoding, in entries of at most 255 bytes packed into records that fit.
func FuzzRockRidgeRoundTrip(f *testing.F) {
	f.Add("name.txt", uint8(0), "../a/./b", uint8(0))
	f.Fuzz(func(t *testing.T, name string, nameRep uint8, target string, targetRep uint8) {
		if len(name) > 255 || len(target) > 4095 {
			return // longer inputs only repeat what amplify reaches
		}
		name, target = amplify(name, nameRep, 255), amplify(target, targetRep, 4095)
		if name == "" || target == "" || strings.ContainsRune(target, 0) {
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
		for _, e := range slEntries(target) {
			if len(e) > maxEntry || int(e[2]) != len(e) {
				t.Fatalf("SL entry of %d bytes", len(e))
			}
			es = append(es, e)
		}
		parts := pack(append([][]byte{pxEntry(&inode{mode: pxSymlink | 0o777}), tfEntry(testEpoch)}, es...), inlineRoom(33))
		if n := partLen(parts[0]); len(parts) > 1 && n+ceLen > inlineRoom(33) || n > inlineRoom(33) {
			t.Fatalf("inline part of %d bytes", n)
		}
		var ce ceAllocator
		var pos []cePos
		for i, s := range areaSizes(parts) {
			if s > sectorSize {
				t.Fatalf("continuation area %d of %d bytes", i, s)
			}
			pos = append(pos, ce.alloc(s))
		}
		// Back through the reader: the inline part, then the areas laid
		// out from sector 1 on as the writer places them.
		inline, areas := assemble(parts, pos, 1)
		img := make([]byte, (1+ce.sectors())*sectorSize)
		for k, a := range areas {
			copy(img[(1+pos[k].sector)*sectorSize+pos[k].offset:], a)
		}
		im := &Image{r: bytes.NewReader(img), size: int64(len(img)), meta: int64(len(img))}
		got2, err := im.suspEntries(inline, 0)
		if err != nil {
			t.Fatal(err)
		}
		info, err := decodeRR(got2)
		if err != nil {
			t.Fatal(err)
		}
		if info.name != name {
			t.Fatalf("NM round trip %q -> %q", name, info.name)
		}
		if want := normalTarget(target); info.target != want {
			t.Fatalf("SL round trip %q -> %q, want %q", target, info.target, want)
		}
		if msg := disagreement(record{}, info, false); msg != "" {
			t.Fatalf("the symbolic link's own entries disagree: %s", msg)
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

// FuzzNames: whatever the names of a directory's entries, identifiers are
// unique, short enough and made of the allowed characters. One name per
// line.
func FuzzNames(f *testing.F) {
	f.Add("Readme\nREADME\nreadme.TXT\nx.y.z\nx_y.z")
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

// FuzzSHA256SUM: whatever an existing SHA256SUM file holds, updating it
// leaves exactly one line for the image, with its digest, and keeps every
// other line as it was.
func FuzzSHA256SUM(f *testing.F) {
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.iso\n"), "a.iso")
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f.Fuzz(func(t *testing.T, old []byte, name string) {
		if name == "" {
			return
		}
		var kept []string
		for _, line := range strings.Split(string(old), "\n") {
			if _, n, ok := parseSumLine(line); line != "" && (!ok || n != name) {
				kept = append(kept, line)
			}
		}
		lines := strings.Split(strings.TrimSuffix(string(updateSums(old, name, sum)), "\n"), "\n")
		found := 0
		var others []string
		for _, line := range lines {
			if s, n, ok := parseSumLine(line); ok && n == name {
				if s != sum {
					t.Fatalf("line %q: digest %q", line, s)
				}
				found++
			} else {
				others = append(others, line)
			}
		}
		if found != 1 {
			t.Fatalf("%d lines for %q in %q", found, name, lines)
		}
		if strings.Join(others, "\n") != strings.Join(kept, "\n") {
			t.Fatalf("other lines changed: %q, want %q", others, kept)
		}
	})
}
