// Package repogen writes yum repository metadata (repodata/) for a
// directory of RPMs, like createrepo_c: primary, filelists and other as
// .xml.gz plus repomd.xml, optionally signed as repomd.xml.asc.
//
// A run is deterministic: packages are listed by path, every timestamp
// comes from Options.Epoch, and gzip headers carry no name or time. The
// new repodata is built in a temporary directory and swapped in with one
// rename, so a reader sees the old repodata or the new one, never a mix.
package repogen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"html"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
)

// Options tune a run. The zero value is usable.
type Options struct {
	// Epoch, when set, is the time written in repomd.xml (revision and
	// timestamps) and the upper bound of each package's file time, as
	// SOURCE_DATE_EPOCH asks. When nil the current time is used.
	Epoch *time.Time
	// Workers is how many packages are read at once (default: CPUs).
	Workers int
	// Incremental reuses the entries of packages that did not change since
	// the repodata already in the directory was written.
	Incremental bool
	// Checksums optionally gives the known sha256 of packages by location
	// (path relative to the directory, with slashes). A package whose
	// checksum is known is only hashed when its entry is not reused, and
	// reuse is decided by checksum instead of size and mtime.
	Checksums map[string]string
	// Sign, when set, signs repomd.xml: it returns the armored detached
	// signature written to repomd.xml.asc.
	Sign func(repomd []byte) ([]byte, error)
}

// Stats says what a run did.
type Stats struct {
	Packages int
	Reused   int // entries taken from the previous repodata
	Read     int // packages whose headers were read
}

type entry struct {
	href       string
	pkgid      string
	size, time int64 // for the index
	fresh      bool  // read from the package, not reused
	// oldPos and oldChunk place an entry reused from the previous run's
	// index in that run's packages and chunks; oldPos is -1 otherwise.
	oldPos, oldChunk      int32
	primary, files, other []byte
}

// Generate writes dir/repodata for every *.rpm below dir.
func Generate(ctx context.Context, dir string, opt Options) (Stats, error) {
	var st Stats
	now := time.Now()
	if opt.Epoch != nil {
		now = *opt.Epoch
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	// The index of the previous run says what changed without reading the
	// old documents; without one (another tool's repodata, or an index
	// that does not match), the old documents are decompressed instead.
	// It is read while the packages are listed and stat'ed.
	var ix *oldIndex
	var old *oldRepodata
	var ixDone chan struct{}
	if opt.Incremental {
		ixDone = make(chan struct{})
		go func() {
			defer close(ixDone)
			if ix = readIndex(dir); ix == nil {
				old = readOld(dir) // a missing or unreadable old repodata only means no reuse
			}
		}()
	}
	hrefs, err := listRPMs(dir)
	if err != nil {
		if ixDone != nil {
			<-ixDone
			if ix != nil {
				ix.close()
			}
		}
		return st, err
	}
	nw := min(workers, max(len(hrefs), 1))
	ws := make([]worker, nw)
	// each runs fn for every package, on a fixed set of workers taking
	// packages in turn: in an update most packages cost one stat, and a
	// goroutine each would spend more on scheduling (and waking idle
	// threads) than on the stat.
	each := func(fn func(w *worker, i int) error) error {
		g, gctx := errgroup.WithContext(ctx)
		var next atomic.Int64
		for k := range ws {
			w := &ws[k]
			g.Go(func() error {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(hrefs) {
						return nil
					}
					if err := gctx.Err(); err != nil {
						return err
					}
					if err := fn(w, i); err != nil {
						return err
					}
				}
			})
		}
		return g.Wait()
	}
	var stats []fileStat
	if opt.Incremental {
		stats = make([]fileStat, len(hrefs))
		err := statAll(dir, hrefs, stats, each)
		<-ixDone
		if ix != nil {
			defer ix.close()
		}
		if err != nil {
			return st, err
		}
	}
	var byHref map[string]*oldEntry
	var members map[string]map[[32]byte][]byte
	// With an index, each package's old entry is found by merging the
	// two sorted lists: oldPos[i] is its place in the index, or -1.
	var oldPos, oldChunk []int32
	switch {
	case ix != nil:
		oldPos, oldChunk = make([]int32, len(hrefs)), make([]int32, len(hrefs))
		j, c := 0, 0
		for i, h := range hrefs {
			for j < len(ix.Packages) && ix.Packages[j].Href < h {
				j++
			}
			oldPos[i] = -1
			if j < len(ix.Packages) && ix.Packages[j].Href == h {
				for j >= ix.bounds[c] {
					c++
				}
				oldPos[i], oldChunk[i] = int32(j), int32(c)
			}
		}
	case old != nil:
		byHref, members = old.byHref, old.members
	}

	entries := make([]entry, len(hrefs))
	bounds := chunkBounds(hrefs)
	// With nothing to reuse, each chunk is compressed by the worker that
	// completes it, while the other packages are still being read, so
	// both CPUs stay busy to the end instead of compressing everything
	// after the last package.
	var pre [][3]part
	var chunkOf []int32
	var pending []atomic.Int32
	if ix == nil && old == nil {
		pre = make([][3]part, len(bounds))
		chunkOf = make([]int32, len(hrefs))
		pending = make([]atomic.Int32, len(bounds))
		start := 0
		for c, end := range bounds {
			for i := start; i < end; i++ {
				chunkOf[i] = int32(c)
			}
			pending[c].Store(int32(end - start))
			start = end
		}
	}
	err = each(func(w *worker, i int) error {
		var fst *fileStat
		if stats != nil {
			fst = &stats[i]
		}
		var o *oldEntry
		var oe oldEntry
		if oldPos != nil {
			if j := oldPos[i]; j >= 0 {
				p := &ix.Packages[j]
				oe = oldEntry{pkgid: p.Pkgid, size: p.Size, time: p.Time, indexed: true, chunk: int(oldChunk[i]), pos: int(j)}
				o = &oe
			}
		} else if byHref != nil {
			o = byHref[hrefs[i]]
		}
		e, err := packageEntry(dir, hrefs[i], fst, o, opt, now, w)
		if err != nil {
			return err
		}
		entries[i] = e
		if pre != nil {
			if c := chunkOf[i]; pending[c].Add(-1) == 0 {
				start := 0
				if c > 0 {
					start = bounds[c-1]
				}
				pre[c] = w.compressChunk(entries[start:bounds[c]])
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	// The workers' compressors serve what is left to compress (heads and
	// tails, changed chunks) rather than a fresh one: each is ~1 MiB that
	// a new process must fault in.
	for k := range ws {
		if ws[k].fw != nil {
			flatePool.Put(ws[k].fw)
		}
	}
	reuse, err := planChunks(dir, entries, bounds, ix, opt, now, &ws[0])
	if err != nil {
		return st, err
	}
	st.Packages = len(entries)
	for _, e := range entries {
		if e.fresh {
			st.Read++
		} else {
			st.Reused++
		}
	}
	return st, writeRepodata(dir, entries, bounds, reuse, pre, ix, now, opt.Sign, members)
}

// planChunks decides, for an indexed previous run, which chunks are copied
// as they were: those holding the same packages as an old chunk, none of
// them changed. It returns, per chunk, the old chunk to copy or -1. The
// unchanged packages of the other chunks get their old fragments, from
// their old chunk's members; when those cannot be read back the package
// is read again instead.
func planChunks(dir string, entries []entry, bounds []int, ix *oldIndex, opt Options, now time.Time, w *worker) ([]int, error) {
	reuse := make([]int, len(bounds))
	for c := range reuse {
		reuse[c] = -1
	}
	if ix == nil {
		return reuse, nil
	}
	firstOld := make(map[string]int, len(ix.bounds))
	start := 0
	for c, end := range ix.bounds {
		if end > start {
			firstOld[ix.Packages[start].Href] = c
		}
		start = end
	}
	type frags struct {
		prim, files, other [][]byte
		ok                 bool
	}
	loaded := map[int]*frags{}
	start = 0
	for c, end := range bounds {
		chunk := entries[start:end]
		if len(chunk) > 0 {
			if oc, ok := firstOld[chunk[0].href]; ok && sameChunk(chunk, ix, oc) {
				reuse[c] = oc
				start = end
				continue
			}
		}
		for k := range chunk {
			e := &chunk[k]
			if e.oldPos < 0 || e.primary != nil {
				continue
			}
			oc := int(e.oldChunk)
			f := loaded[oc]
			if f == nil {
				f = &frags{}
				f.prim, f.files, f.other, f.ok = ix.chunkFragments(oc)
				loaded[oc] = f
			}
			first := 0
			if oc > 0 {
				first = ix.bounds[oc-1]
			}
			if j := int(e.oldPos) - first; f.ok && html.UnescapeString(between(f.prim[j], []byte(`<location href="`), []byte(`"`))) == e.href {
				e.primary, e.files, e.other = f.prim[j], f.files[j], f.other[j]
				continue
			}
			fresh, err := packageEntry(dir, e.href, nil, nil, opt, now, w)
			if err != nil {
				return nil, err
			}
			*e = fresh
		}
		start = end
	}
	return reuse, nil
}

// sameChunk reports whether chunk holds exactly the packages of old chunk
// oc, all unchanged.
func sameChunk(chunk []entry, ix *oldIndex, oc int) bool {
	first := 0
	if oc > 0 {
		first = ix.bounds[oc-1]
	}
	if ix.bounds[oc]-first != len(chunk) {
		return false
	}
	for k, e := range chunk {
		if e.fresh || e.oldPos < 0 || int(e.oldPos) != first+k {
			return false
		}
	}
	return true
}

// listRPMs returns the slash-separated paths of the RPMs below dir, sorted,
// skipping repodata and the temporary litter of interrupted runs. A
// symbolic link named *.rpm is listed under its own name and read through,
// as createrepo_c does; it must lead to a regular file. Links to
// directories are not followed (createrepo_c follows them, and loops on a
// link to "..").
func listRPMs(dir string) ([]string, error) {
	var hrefs []string
	var walk func(rel string) error
	walk = func(rel string) error {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, d := range ents {
			name := d.Name()
			if d.IsDir() {
				if name == "repodata" || strings.HasPrefix(name, ".") {
					continue
				}
				if err := walk(rel + name + "/"); err != nil {
					return err
				}
			} else if strings.HasSuffix(name, ".rpm") && !strings.HasSuffix(name, ".src.rpm") && !strings.HasPrefix(name, ".") {
				switch {
				case d.Type().IsRegular():
				case d.Type()&fs.ModeSymlink != 0:
					if err := linkedRPM(filepath.Join(dir, filepath.FromSlash(rel+name))); err != nil {
						return err
					}
				default:
					continue
				}
				hrefs = append(hrefs, rel+name)
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, fmt.Errorf("listing RPMs in %s: %w", dir, err)
	}
	slices.Sort(hrefs)
	return hrefs, nil
}

// linkedRPM checks that the link p, named like a package, leads to a
// regular file. createrepo_c skips a dangling link, or one to a directory,
// without a word; a package list that names it expects it indexed, so
// here it is an error.
func linkedRPM(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		target, _ := os.Readlink(p)
		return fmt.Errorf("%s: symbolic link to %q does not lead to a package: %w", p, target, err)
	}
	if !fi.Mode().IsRegular() {
		target, _ := os.Readlink(p)
		kind := "directory"
		if !fi.IsDir() {
			kind = fsutil.TypeName(fi.Mode())
		}
		return fmt.Errorf("%s: symbolic link to %q leads to a %s, not a package file", p, target, kind)
	}
	return nil
}

// fileStat is what an update needs to know of a package file to reuse its
// entry.
type fileStat struct {
	size, mtime int64
}

// statAll stats every package into stats, relative to an open dir (one
// path component to resolve instead of the whole path, and no FileInfo).
func statAll(dir string, hrefs []string, stats []fileStat, each func(func(*worker, int) error) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	return each(func(_ *worker, i int) error {
		var st unix.Stat_t
		err := unix.Fstatat(fd, hrefs[i], &st, 0)
		for err == unix.EINTR {
			err = unix.Fstatat(fd, hrefs[i], &st, 0)
		}
		if err != nil {
			return &fs.PathError{Op: "stat", Path: filepath.Join(dir, filepath.FromSlash(hrefs[i])), Err: err}
		}
		stats[i] = fileStat{size: st.Size, mtime: st.Mtim.Sec}
		return nil
	})
}

// packageEntry returns the repodata entry of one package, reused from the
// old repodata when the file has not changed according to its stat, st.
// Without st (nothing to reuse) the package is read.
func packageEntry(dir, href string, st *fileStat, o *oldEntry, opt Options, now time.Time, w *worker) (entry, error) {
	path := filepath.Join(dir, filepath.FromSlash(href))
	// Size and mtime say "unchanged" only when the mtime was not clamped
	// to the epoch; otherwise trust nothing but a known checksum.
	clamp := func(mtime int64) (int64, bool) {
		if opt.Epoch != nil && mtime >= now.Unix() {
			return now.Unix(), true
		}
		return mtime, false
	}
	known := opt.Checksums[href]
	if st != nil && o != nil && (o.indexed || o.files != nil && o.other != nil) && o.size == st.size {
		mtime, clamped := clamp(st.mtime)
		if known != "" && known == o.pkgid || known == "" && !clamped && o.time == mtime {
			// An indexed entry's fragments are filled in by planChunks,
			// and only if its chunk is not copied whole.
			e := entry{href: href, pkgid: o.pkgid, size: o.size, time: o.time, oldPos: -1, primary: o.primary, files: o.files, other: o.other}
			if o.indexed {
				e.oldPos, e.oldChunk = int32(o.pos), int32(o.chunk)
			}
			return e, nil
		}
	}
	p, mtime, err := w.readPackage(path)
	if err != nil {
		return entry{}, fmt.Errorf("%s: %w", path, err)
	}
	if known != "" && known != p.Checksum {
		return entry{}, fmt.Errorf("%s: sha256 is %s, expected %s", path, p.Checksum, known)
	}
	mtime, _ = clamp(mtime)
	p.Location = href
	if i := controlAt(href); i >= 0 {
		return entry{}, fmt.Errorf("%s: package %s: file name holds the control character %#02x; createrepo_c refuses such a package too", path, nevra(p), href[i])
	}
	p.TimeFile = mtime
	e := entry{href: href, pkgid: p.Checksum, size: p.SizePackage, time: mtime, fresh: true, oldPos: -1}
	e.primary, e.files, e.other = w.fragments(p)
	return e, nil
}

// doc returns the entry's fragment of document k (primary, filelists, other).
func (e *entry) doc(k int) []byte {
	switch k {
	case 0:
		return e.primary
	case 1:
		return e.files
	}
	return e.other
}

// ReadPackage reads an RPM file's headers and sha256 in one pass and
// returns its repodata entry without Location or TimeFile. The pool, when
// given, is ignored.
func ReadPackage(path string, pool *sync.Pool) (*repomd.Package, error) {
	var w worker
	p, _, err := w.readPackage(path)
	return p, err
}

// hashReader feeds what the header parser reads past the first chunk into
// the file hash, so every byte is hashed exactly once.
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func (r hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	return n, err
}

// hashSkip hides the file's WriterTo/ReaderFrom so CopyBuffer uses our buffer.
type hashSkip struct{ r io.Reader }

func (r hashSkip) Read(p []byte) (int, error) { return r.r.Read(p) }

type mdFile struct {
	typ                    string
	name                   string // final file name in repodata
	checksum, openChecksum string
	size, openSize         int64
}

// part is one gzip member of a document: content, compressed here or
// already (member set), or the previous run's member, copied with its
// content not at hand.
type part struct {
	content []byte
	frags   [][]byte // content given as fragments, n bytes in all
	n       int
	member  []byte
	sum     [32]byte
	copied  bool
	oldOff  int64 // where a copied member lies in the previous document
}

func (p *part) contentLen() int { return len(p.content) + p.n }

func (p *part) hashContent(h hash.Hash) {
	h.Write(p.content)
	for _, f := range p.frags {
		h.Write(f)
	}
}

// writeRepodata writes the three documents, repomd.xml and the index into
// a new directory and swaps it in place of dir/repodata. reuse gives, per
// chunk, the chunk of ix to copy, or -1; pre, when set, gives every
// chunk's three parts already compressed.
func writeRepodata(dir string, entries []entry, bounds, reuse []int, pre [][3]part, ix *oldIndex, now time.Time, sign func([]byte) ([]byte, error), legacy map[string]map[[32]byte][]byte) error {
	final := filepath.Join(dir, "repodata")
	tmp, err := fsutil.TempDir(final)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	count := strconv.Itoa(len(entries))
	docs := []struct {
		typ, head, tail string
		part            func(*entry) []byte
	}{
		{"primary", primaryHead + count + "\">\n", primaryTail, func(e *entry) []byte { return e.primary }},
		{"filelists", filelistsHead + count + "\">\n", filelistsTail, func(e *entry) []byte { return e.files }},
		{"other", otherHead + count + "\">\n", otherTail, func(e *entry) []byte { return e.other }},
	}
	files := make([]mdFile, len(docs))
	newIx := index{Version: indexVersion, Docs: map[string]indexDoc{}, Packages: make([]indexPackage, len(entries))}
	for i, e := range entries {
		newIx.Packages[i] = indexPackage{Href: e.href, Pkgid: e.pkgid, Size: e.size, Time: e.time}
	}
	ixDocs := make([]indexDoc, len(docs))
	docParts := make([][]part, len(docs))
	pending := 0 // bytes to compress
	for i, d := range docs {
		parts := []part{{content: []byte(d.head)}}
		start := 0
		for c, end := range bounds {
			if pre != nil {
				parts = append(parts, pre[c][i])
			} else if reuse[c] >= 0 {
				p := part{member: ix.member(d.typ, reuse[c]+1), copied: true, oldOff: ix.Docs[d.typ].Parts[reuse[c]+1].Off}
				hex.Decode(p.sum[:], []byte(ix.Docs[d.typ].Parts[reuse[c]+1].Sum))
				parts = append(parts, p)
			} else {
				// Sized first: growing it by appends would touch
				// several times the memory, each page a fault in a
				// new process.
				n := 0
				for k := start; k < end; k++ {
					n += len(d.part(&entries[k]))
				}
				c := make([]byte, 0, n)
				for k := start; k < end; k++ {
					c = append(c, d.part(&entries[k])...)
				}
				parts = append(parts, part{content: c})
				pending += len(c)
			}
			start = end
		}
		docParts[i] = append(parts, part{content: []byte(d.tail)})
	}
	// An update compresses a few chunks: one compressor, reused from the
	// pool for all of them, touches less fresh memory (each compressor's
	// tables are ~1 MiB, page-faulted in a new process) than one per
	// document running in parallel. It runs beside the documents' writers,
	// which meanwhile hash the content (and inflate the copied members)
	// for the open-checksums and wait for it only to write the members. A
	// run with much to compress compresses each document in its writer.
	var ready chan struct{}
	if pending < 1<<20 {
		ready = make(chan struct{})
		go func() {
			defer close(ready)
			for i := range docParts {
				for k := range docParts[i] {
					if p := &docParts[i][k]; !p.copied && p.n == 0 && len(p.content) > 0 {
						// The writer computes p.sum itself at the same time.
						sum := sha256.Sum256(p.content)
						var ok bool
						if p.member, ok = legacy[docs[i].typ][sum]; !ok {
							p.member = compressMember(p.content, sum)
						}
					}
				}
			}
		}()
	}
	var g errgroup.Group
	for i, d := range docs {
		g.Go(func() error {
			var oldParts []indexPart
			var oldDoc []byte
			if ix != nil {
				oldParts, oldDoc = ix.Docs[d.typ].Parts, ix.raw[d.typ]
			}
			m, xd, err := writeDoc(tmp, d.typ, docParts[i], legacy[d.typ], oldParts, oldDoc, ready)
			files[i], ixDocs[i] = m, xd
			return err
		})
	}
	err = g.Wait()
	if ready != nil {
		<-ready // the compressor writes into docParts until then
	}
	if err != nil {
		return err
	}
	for i, d := range docs {
		newIx.Docs[d.typ] = ixDocs[i]
	}
	md := repomdXML(files, now.Unix())
	if err := os.WriteFile(filepath.Join(tmp, "repomd.xml"), md, 0o644); err != nil {
		return err
	}
	mdSum := sha256.Sum256(md)
	newIx.Repomd = hex.EncodeToString(mdSum[:])
	ixf, err := os.OpenFile(filepath.Join(tmp, indexName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = newIx.encodeTo(ixf)
	if cerr := ixf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if sign != nil {
		sig, err := sign(md)
		if err != nil {
			return fmt.Errorf("signing repomd.xml of %s: %w", dir, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "repomd.xml.asc"), sig, 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := swapDir(tmp, final); err != nil {
		return err
	}
	ok = true
	return nil
}

// writeDoc writes one document as gzip members, one per part, then renames
// it to the createrepo "unique" name <sha256>-<type>.xml.gz. A part given
// as a member is copied; a part whose content has the sha256 of a member
// of the previous run (legacy, read from the old documents) copies that;
// others are compressed, by the caller's compressor when ready is not nil
// (closed once it has set their members), else here. The open-checksum
// resumes from oldParts' state before the first part that differs from
// the previous run's part at the same place: the bytes before it are the
// same, so is the state.
func writeDoc(dir, typ string, parts []part, legacy map[[32]byte][]byte, oldParts []indexPart, oldDoc []byte, ready <-chan struct{}) (mdFile, indexDoc, error) {
	m := mdFile{typ: typ}
	xd := indexDoc{Parts: make([]indexPart, len(parts))}
	sums := make([]string, len(parts))
	for i := range parts {
		// Only the content is read here: the members of content parts
		// are being set by the compressor.
		p := &parts[i]
		if !p.copied && p.n == 0 {
			p.sum = sha256.Sum256(p.content)
		}
		if p.copied || p.contentLen() > 0 {
			sums[i] = hex.EncodeToString(p.sum[:])
		}
	}
	osum := sha256.New()
	resume := 0
	if len(oldParts) == len(parts) {
		for resume < len(parts)-1 && oldParts[resume].Sum == sums[resume] {
			resume++
		}
		if resume > 0 && osum.(encoding.BinaryUnmarshaler).UnmarshalBinary(oldParts[resume].State) != nil {
			resume = 0
			osum.Reset()
		}
	}
	// The open-checksum, and the state before each part.
	var mh memberHasher
	for i := range parts {
		p := &parts[i]
		xp := &xd.Parts[i]
		xp.Sum = sums[i]
		if i < resume {
			xp.State = oldParts[i].State
		} else {
			xp.State = marshalState(osum)
		}
		if sums[i] == "" {
			continue // empty: no member
		}
		if p.copied {
			// The content is the copied member's: its length is in the
			// gzip trailer, its bytes are needed only past the resume point.
			z := p.member
			m.openSize += int64(binary.LittleEndian.Uint32(z[len(z)-4:]))
			if i >= resume {
				if err := mh.hash(osum, z); err != nil {
					return m, xd, fmt.Errorf("%s: previous member %d: %w", typ, i, err)
				}
			}
		} else {
			m.openSize += int64(p.contentLen())
			if i >= resume {
				p.hashContent(osum)
			}
		}
	}
	if ready != nil {
		<-ready
	}
	f, err := os.CreateTemp(dir, fsutil.TempPrefix+typ+"-*")
	if err != nil {
		return m, xd, err
	}
	defer f.Close()
	zsum := sha256.New()
	bw := newBufWriter(io.MultiWriter(f, zsum))
	for i := 0; i < len(parts); i++ {
		p := &parts[i]
		xd.Parts[i].Off = m.size
		if sums[i] == "" {
			continue
		}
		z := p.member
		if p.copied && oldDoc != nil {
			// Copied members that follow each other in the previous
			// document are written with one call.
			start, end := p.oldOff, p.oldOff+int64(len(z))
			xd.Parts[i].Len = int64(len(z))
			for i+1 < len(parts) && parts[i+1].copied && parts[i+1].oldOff == end {
				i++
				n := int64(len(parts[i].member))
				xd.Parts[i].Off, xd.Parts[i].Len = m.size+end-start, n
				end += n
			}
			z = oldDoc[start:end]
		} else {
			if z == nil {
				var ok bool
				if z, ok = legacy[p.sum]; !ok {
					z = compressMember(p.content, p.sum)
				}
			}
			xd.Parts[i].Len = int64(len(z))
		}
		if _, err := bw.Write(z); err != nil {
			return m, xd, err
		}
		m.size += int64(len(z))
	}
	if err := bw.Flush(); err != nil {
		return m, xd, err
	}
	if err := f.Chmod(0o644); err != nil {
		return m, xd, err
	}
	if err := f.Close(); err != nil {
		return m, xd, err
	}
	m.checksum = hex.EncodeToString(zsum.Sum(nil))
	m.openChecksum = hex.EncodeToString(osum.Sum(nil))
	m.name = m.checksum + "-" + typ + ".xml.gz"
	xd.Checksum = m.checksum
	return m, xd, os.Rename(f.Name(), filepath.Join(dir, m.name))
}

// bufWriter batches the many small fragment writes into large ones, so
// the gzip and hash layers below see big blocks.
type bufWriter struct {
	w   io.Writer
	buf []byte
}

// 64 KiB is large enough for the syscalls and hashes below, and small
// next to the page faults a larger buffer costs a new process (a full run
// writes three documents at once; members larger than the buffer are
// written directly).
func newBufWriter(w io.Writer) *bufWriter { return &bufWriter{w: w, buf: make([]byte, 0, 64<<10)} }

func (b *bufWriter) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > cap(b.buf) {
		if err := b.Flush(); err != nil {
			return 0, err
		}
		if len(p) > cap(b.buf) {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *bufWriter) Flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

func repomdXML(files []mdFile, ts int64) []byte {
	var b bytes.Buffer
	t := strconv.FormatInt(ts, 10)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<repomd xmlns="` + repomd.NSRepo + `" xmlns:rpm="` + repomd.NSRPM + `">` + "\n")
	b.WriteString("  <revision>" + t + "</revision>\n")
	for _, m := range files {
		fmt.Fprintf(&b, `  <data type="%s">
    <checksum type="sha256">%s</checksum>
    <open-checksum type="sha256">%s</open-checksum>
    <location href="repodata/%s"/>
    <timestamp>%s</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>
`, m.typ, m.checksum, m.openChecksum, m.name, t, m.size, m.openSize)
	}
	b.WriteString("</repomd>\n")
	return b.Bytes()
}

// ErrNoRepodata is returned by readers when a directory has no repodata.
var ErrNoRepodata = errors.New("no repodata")
