package repogen

import (
	"bytes"
	"html"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
)

var publishDir = fsutil.PublishDir

// oldEntry is one package of the previous repodata, kept as the raw XML
// fragments of its three documents.
type oldEntry struct {
	pkgid                 string
	size, time            int64
	primary, files, other []byte
	// indexed entries come from the previous run's index: their fragments
	// are not read unless needed, from old chunk number chunk, where the
	// entry is package number pos of the old run.
	indexed    bool
	chunk, pos int
}

// oldRepodata is what an incremental run takes from the previous repodata:
// package fragments by href, and each document's compressed members by
// content hash.
type oldRepodata struct {
	byHref  map[string]*oldEntry
	members map[string]map[[32]byte][]byte // by document type
}

// readOld loads the previous repodata of dir, keyed by location href.
// Anything unexpected makes it return what it could read, or nil: the
// worst case of a bad old repodata is a full run, never a wrong entry,
// because every fragment is matched by pkgid across the three documents.
func readOld(dir string) *oldRepodata {
	rd := filepath.Join(dir, "repodata")
	f, err := os.Open(filepath.Join(rd, "repomd.xml"))
	if err != nil {
		return nil
	}
	md, err := repomd.ParseRepomd(f)
	f.Close()
	if err != nil {
		return nil
	}

	old := &oldRepodata{members: map[string]map[[32]byte][]byte{}}
	var mu sync.Mutex
	load := func(typ string) []byte {
		d := md.Data(typ)
		if d == nil {
			return nil
		}
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(d.Location)))
		if err != nil {
			return nil
		}
		if content, byHash, ok := splitMembers(raw, d.OpenSize); ok {
			mu.Lock()
			old.members[typ] = byHash
			mu.Unlock()
			return content
		}
		r, err := repomd.Decompress(d.Location, bytes.NewReader(raw))
		if err != nil {
			return nil
		}
		// repomd.xml gives the size: allocate once instead of growing.
		var buf bytes.Buffer
		if d.OpenSize > 0 && d.OpenSize < 1<<31 {
			buf.Grow(int(d.OpenSize) + 512)
		}
		if _, err := buf.ReadFrom(r); err != nil {
			return nil
		}
		return buf.Bytes()
	}
	var prim, fl, oth []byte
	done := make(chan struct{}, 3)
	go func() { prim = load("primary"); done <- struct{}{} }()
	go func() { fl = load("filelists"); done <- struct{}{} }()
	go func() { oth = load("other"); done <- struct{}{} }()
	<-done
	<-done
	<-done
	if prim == nil || fl == nil || oth == nil {
		return old
	}
	byID := map[string]*oldEntry{}
	byHref := map[string]*oldEntry{}
	for _, frag := range fragments(prim) {
		e := &oldEntry{primary: frag}
		e.pkgid = between(frag, []byte(`pkgid="YES">`), []byte("<"))
		href := html.UnescapeString(between(frag, []byte(`<location href="`), []byte(`"`)))
		size, err1 := strconv.ParseInt(between(frag, []byte(`<size package="`), []byte(`"`)), 10, 64)
		tm, err2 := strconv.ParseInt(between(frag, []byte(`<time file="`), []byte(`"`)), 10, 64)
		if e.pkgid == "" || href == "" || err1 != nil || err2 != nil || bytes.Contains(frag, []byte("xml:base")) {
			continue
		}
		e.size, e.time = size, tm
		byID[e.pkgid] = e
		byHref[href] = e
	}
	for _, frag := range fragments(fl) {
		if e := byID[between(frag, []byte(`pkgid="`), []byte(`"`))]; e != nil {
			e.files = frag
		}
	}
	for _, frag := range fragments(oth) {
		if e := byID[between(frag, []byte(`pkgid="`), []byte(`"`))]; e != nil {
			e.other = frag
		}
	}
	old.byHref = byHref
	return old
}

// fragments splits a document into its top-level <package> elements,
// each with its trailing newline. Package elements do not nest, and "<"
// is always escaped inside text, so a byte search is exact.
func fragments(doc []byte) [][]byte {
	var out [][]byte
	open, end := []byte("<package"), []byte("</package>")
	for {
		i := bytes.Index(doc, open)
		if i < 0 {
			return out
		}
		doc = doc[i:]
		j := bytes.Index(doc, end)
		if j < 0 {
			return out
		}
		j += len(end)
		if j < len(doc) && doc[j] == '\n' {
			j++
		}
		frag := doc[:j:j]
		if !bytes.HasSuffix(frag, []byte("\n")) {
			frag = append(append([]byte(nil), frag...), '\n')
		}
		out = append(out, frag)
		doc = doc[j:]
	}
}

func between(b, start, end []byte) string {
	i := bytes.Index(b, start)
	if i < 0 {
		return ""
	}
	b = b[i+len(start):]
	j := bytes.Index(b, end)
	if j < 0 {
		return ""
	}
	return string(b[:j])
}
