package registrygen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

// Tree is a scanned image root.
type Tree struct {
	Dir          string // absolute path of the root (Scan), or its path in the FS (ScanFS)
	Repositories []*Repository
}

// Repository is one image name and everything served under it.
type Repository struct {
	Name      string // relative to the root, without any prefix
	Tags      []Tag  // sorted by name
	Manifests []File // every manifest (tagged or index child), unique, sorted by digest
	Blobs     []File // unique, sorted by digest
}

// Tag is one <name>/<tag> image directory.
type Tag struct {
	Name     string
	Manifest File
}

// File is a served file: a manifest or a blob.
type File struct {
	Digest    string // sha256:<hex>
	MediaType string // manifests only
	Size      int64  // manifests only (a blob is stat'ed when served)
	Path      string // slash-separated, relative to Tree.Dir
}

// Scan finds every image directory under dir: any directory holding both
// manifest.json and version, the name being its parent's path relative to
// dir and the tag its own name. Directories starting with "." are skipped
// (hidden, or the .tmp- litter of interrupted atomic writes); image
// directories are not descended into. Names, tags and manifests are
// validated, and every blob and child manifest that a manifest references
// must be present: a tree that clients could not pull in full is an error.
// All problems are reported, each naming its directory or file.
func Scan(dir string) (*Tree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: image root is not a directory", abs)
	}
	return scan(os.DirFS(abs), abs, func(rel string) string { return filepath.Join(abs, filepath.FromSlash(rel)) })
}

// ScanFS is Scan of the directory dir (a slash path, "." for the root) of
// fsys, for trees read without extracting them, such as an ISO image's.
// The root must be a directory itself, not a link to one. Tree.Dir is dir,
// and errors name files by their path in fsys.
func ScanFS(fsys fs.FS, dir string) (*Tree, error) {
	if !fs.ValidPath(dir) {
		return nil, &fs.PathError{Op: "scan", Path: dir, Err: fs.ErrInvalid}
	}
	st, err := fs.Lstat(fsys, dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: image root is not a directory", dir)
	}
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, err
	}
	return scan(sub, dir, func(rel string) string { return path.Join(dir, rel) })
}

// scan reads the tree at the root of fsys; where names a path of fsys in
// errors.
func scan(fsys fs.FS, dir string, where func(rel string) string) (*Tree, error) {
	s := &scanner{where: where, fsys: fsys, repos: map[string]*repoBuild{}}
	s.walk("")
	s.scanImages()
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	t := &Tree{Dir: dir}
	names := make([]string, 0, len(s.repos))
	for n := range s.repos {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := s.repos[n]
		r := &Repository{Name: n, Tags: b.tags}
		sort.Slice(r.Tags, func(i, j int) bool { return r.Tags[i].Name < r.Tags[j].Name })
		r.Manifests = sortedFiles(b.manifests)
		r.Blobs = sortedFiles(b.blobs)
		t.Repositories = append(t.Repositories, r)
	}
	return t, nil
}

type repoBuild struct {
	tags      []Tag
	manifests map[string]File
	blobs     map[string]File
}

type scanner struct {
	where func(rel string) string // rel's name in errors
	fsys  fs.FS                   // the root
	repos map[string]*repoBuild
	errs  []error
	jobs  []imageJob // image directories found by walk, in sorted order
}

type imageJob struct {
	rel     string
	entries []fs.DirEntry
	// Filled by scanImages.
	errs   []error
	result *imageResult
}

// imageResult is what one valid image directory contributes.
type imageResult struct {
	name, tag string
	manifests []File // [0] is manifest.json, then the children
	blobs     []File // sorted by digest
}

// scanImages reads the image directories found by walk, in parallel (the
// cost is one open and read per manifest, which a second core halves),
// then merges them in walk order so that the result and the errors do not
// depend on scheduling.
func (s *scanner) scanImages() {
	work := make(chan *imageJob)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(s.jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				js := &scanner{where: s.where, fsys: s.fsys}
				j.result = js.image(j.rel, j.entries)
				j.errs = js.errs
			}
		}()
	}
	for i := range s.jobs {
		work <- &s.jobs[i]
	}
	close(work)
	wg.Wait()
	for _, j := range s.jobs {
		s.errs = append(s.errs, j.errs...)
		if j.result != nil {
			s.add(j.result)
		}
	}
}

// add records an image. The first directory (in sorted walk order)
// holding a digest serves it: the content is the same wherever it is, the
// digest says so.
func (s *scanner) add(im *imageResult) {
	r := s.repos[im.name]
	if r == nil {
		r = &repoBuild{manifests: map[string]File{}, blobs: map[string]File{}}
		s.repos[im.name] = r
	}
	r.tags = append(r.tags, Tag{Name: im.tag, Manifest: im.manifests[0]})
	for _, m := range im.manifests {
		if _, dup := r.manifests[m.Digest]; !dup {
			r.manifests[m.Digest] = m
		}
	}
	for _, b := range im.blobs {
		if _, dup := r.blobs[b.Digest]; !dup {
			r.blobs[b.Digest] = b
		}
	}
}

func (s *scanner) fail(rel, format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf("%s: %s", s.where(rel), fmt.Sprintf(format, args...)))
}

func (s *scanner) walk(rel string) {
	entries, err := fs.ReadDir(s.fsys, orDot(rel))
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s: %w", s.where(rel), err))
		return
	}
	if dirlayout.IsImageDir(entries) {
		s.jobs = append(s.jobs, imageJob{rel: rel, entries: entries})
		return
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			s.walk(path.Join(rel, e.Name()))
		}
	}
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// image reads and checks the image directory rel (slash-separated) with
// dirlayout; it returns nil, with s.errs saying why, if the directory
// cannot be served. Blob content is not read: the digests are trusted
// from the names, as clients verify what they pull.
func (s *scanner) image(rel string, entries []fs.DirEntry) *imageResult {
	name, tag := path.Dir(rel), path.Base(rel)
	if rel == "" || name == "." {
		s.fail(rel, "image directory is not at ROOT/<name>/<tag> (it has no name)")
		return nil
	}
	if err := ValidateName(name); err != nil {
		s.fail(rel, "%v", err)
		return nil
	}
	if err := ValidateTag(tag); err != nil {
		s.fail(rel, "%v", err)
		return nil
	}
	d, err := dirlayout.ReadEntries(context.Background(), s.fsys, rel, entries, dirlayout.Options{})
	if err != nil {
		s.layoutErrors(err)
		return nil
	}
	files := make([]File, 0, len(d.Manifests))
	for _, m := range d.Manifests {
		files = append(files, File{Digest: m.Digest, MediaType: string(m.MediaType), Size: m.Size, Path: m.Path})
	}
	// No Size for blobs: nginx and the handler stat the file when serving
	// it, and an lstat per blob would be most of the scan's system time.
	blobs := make([]File, 0, len(d.BlobFiles))
	for _, b := range d.BlobFiles {
		blobs = append(blobs, File{Digest: b, Path: path.Join(rel, dirlayout.BlobName(b))})
	}
	return &imageResult{name: name, tag: tag, manifests: files, blobs: blobs}
}

// layoutErrors records dirlayout's faults, each under its absolute path.
func (s *scanner) layoutErrors(err error) {
	for _, e := range dirlayout.Errors(err) {
		var le *dirlayout.Error
		if errors.As(e, &le) {
			s.fail(le.Path, "%v", le.Err)
		} else {
			s.errs = append(s.errs, e)
		}
	}
}

func sortedFiles(m map[string]File) []File {
	out := make([]File, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out
}
