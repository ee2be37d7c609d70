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
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmfile"
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
	href                  string
	pkgid                 string
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
	hrefs, err := listRPMs(dir)
	if err != nil {
		return st, err
	}
	var old *oldRepodata
	if opt.Incremental {
		old = readOld(dir) // a missing or unreadable old repodata only means no reuse
	}
	var byHref map[string]*oldEntry
	var members map[string]map[[32]byte][]byte
	if old != nil {
		byHref, members = old.byHref, old.members
	}

	entries := make([]entry, len(hrefs))
	var reused, read int
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	buf := sync.Pool{New: func() any { return make([]byte, 1<<20) }}
	for i, href := range hrefs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			e, fresh, err := packageEntry(dir, href, byHref, opt, now, &buf)
			if err != nil {
				return err
			}
			entries[i] = *e
			mu.Lock()
			if fresh {
				read++
			} else {
				reused++
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	st = Stats{Packages: len(entries), Reused: reused, Read: read}
	return st, writeRepodata(dir, entries, now, opt.Sign, members)
}

// listRPMs returns the slash-separated paths of the RPMs below dir, sorted,
// skipping repodata and the temporary litter of interrupted runs.
func listRPMs(dir string) ([]string, error) {
	var hrefs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != dir && (name == "repodata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".rpm") && !strings.HasSuffix(name, ".src.rpm") && !strings.HasPrefix(name, ".") && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			hrefs = append(hrefs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing RPMs in %s: %w", dir, err)
	}
	sort.Strings(hrefs)
	return hrefs, nil
}

// packageEntry returns the repodata entry of one package, reused from the
// old repodata when the file has not changed.
func packageEntry(dir, href string, old map[string]*oldEntry, opt Options, now time.Time, pool *sync.Pool) (*entry, bool, error) {
	path := filepath.Join(dir, filepath.FromSlash(href))
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	mtime := fi.ModTime().Unix()
	clamped := opt.Epoch != nil && mtime >= now.Unix()
	if clamped {
		mtime = now.Unix()
	}
	known := opt.Checksums[href]
	if o := old[href]; o != nil && o.files != nil && o.other != nil && o.size == fi.Size() {
		// Size and mtime say "unchanged" only when the mtime was not
		// clamped; otherwise trust nothing but a known checksum.
		if known != "" && known == o.pkgid || known == "" && !clamped && o.time == mtime {
			return &entry{href: href, pkgid: o.pkgid, primary: o.primary, files: o.files, other: o.other}, false, nil
		}
	}
	p, err := ReadPackage(path, pool)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	if known != "" && known != p.Checksum {
		return nil, false, fmt.Errorf("%s: sha256 is %s, expected %s", path, p.Checksum, known)
	}
	p.Location = href
	p.TimeFile = mtime
	return &entry{
		href:    href,
		pkgid:   p.Checksum,
		primary: AppendPrimary(nil, p),
		files:   AppendFilelists(nil, p),
		other:   AppendOther(nil, p),
	}, true, nil
}

// ReadPackage reads an RPM file's headers and sha256 in one pass and
// returns its repodata entry without Location or TimeFile.
func ReadPackage(path string, pool *sync.Pool) (*repomd.Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	h := sha256.New()
	var rp *rpmfile.Package
	{
		var buf []byte
		if pool != nil {
			buf = pool.Get().([]byte)
			defer pool.Put(buf)
		} else {
			buf = make([]byte, 1<<20)
		}
		// Read a first chunk that usually holds both headers, parse them
		// from memory, then hash the rest without parsing it.
		n, err := io.ReadFull(f, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, err
		}
		h.Write(buf[:n])
		// The parser copies what it keeps, so buf is free again afterwards.
		if rp, err = rpmfile.Read(io.MultiReader(bytes.NewReader(buf[:n]), hashReader{f, h})); err != nil {
			return nil, err
		}
		m, err := io.CopyBuffer(h, hashSkip{f}, buf)
		if err != nil {
			return nil, err
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != size || m < 0 {
			return nil, fmt.Errorf("file changed size while being read")
		}
	}
	p, err := FromHeader(rp)
	if err != nil {
		return nil, err
	}
	p.ChecksumType = "sha256"
	p.Checksum = hex.EncodeToString(h.Sum(nil))
	p.SizePackage = size
	return p, nil
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

// writeRepodata writes the three documents and repomd.xml into a new
// directory and swaps it in place of dir/repodata.
func writeRepodata(dir string, entries []entry, now time.Time, sign func([]byte) ([]byte, error), old map[string]map[[32]byte][]byte) error {
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
	hrefs := make([]string, len(entries))
	for i := range entries {
		hrefs[i] = entries[i].href
	}
	bounds := chunkBounds(hrefs)
	files := make([]mdFile, len(docs))
	var g errgroup.Group
	for i, d := range docs {
		g.Go(func() error {
			parts := [][]byte{[]byte(d.head)}
			start := 0
			for _, end := range bounds {
				var c []byte
				for k := start; k < end; k++ {
					c = append(c, d.part(&entries[k])...)
				}
				parts = append(parts, c)
				start = end
			}
			parts = append(parts, []byte(d.tail))
			m, err := writeDoc(tmp, d.typ, parts, old[d.typ])
			files[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	md := repomdXML(files, now.Unix())
	if err := os.WriteFile(filepath.Join(tmp, "repomd.xml"), md, 0o644); err != nil {
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

// writeDoc writes one document as gzip members, one per part, reusing
// the compressed member of the previous run for every part whose content
// is unchanged, then renames it to the createrepo "unique" name
// <sha256>-<type>.xml.gz.
func writeDoc(dir, typ string, parts [][]byte, old map[[32]byte][]byte) (mdFile, error) {
	m := mdFile{typ: typ}
	f, err := os.CreateTemp(dir, fsutil.TempPrefix+typ+"-*")
	if err != nil {
		return m, err
	}
	defer f.Close()
	zsum := sha256.New()
	osum := sha256.New()
	bw := newBufWriter(io.MultiWriter(f, zsum))
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		osum.Write(p)
		m.openSize += int64(len(p))
		sum := sha256.Sum256(p)
		z, ok := old[sum]
		if !ok {
			z = compressMember(p, sum)
		}
		if _, err := bw.Write(z); err != nil {
			return m, err
		}
		m.size += int64(len(z))
	}
	if err := bw.Flush(); err != nil {
		return m, err
	}
	if err := f.Chmod(0o644); err != nil {
		return m, err
	}
	if err := f.Close(); err != nil {
		return m, err
	}
	m.checksum = hex.EncodeToString(zsum.Sum(nil))
	m.openChecksum = hex.EncodeToString(osum.Sum(nil))
	m.name = m.checksum + "-" + typ + ".xml.gz"
	return m, os.Rename(f.Name(), filepath.Join(dir, m.name))
}

// bufWriter batches the many small fragment writes into large ones, so
// the gzip and hash layers below see big blocks.
type bufWriter struct {
	w   io.Writer
	buf []byte
}

func newBufWriter(w io.Writer) *bufWriter { return &bufWriter{w: w, buf: make([]byte, 0, 1<<20)} }

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
