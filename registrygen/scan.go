package registrygen

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Names of the files of a skopeo dir: image directory (transport version 1.1).
const (
	ManifestFile = "manifest.json"
	VersionFile  = "version"
	// childSuffix ends the name of an index's child manifest, stored as
	// "<hex>.manifest.json" beside the index.
	childSuffix = ".manifest.json"
)

// versions are the accepted contents of the version file. 1.0 trees hold
// no child manifests, which the scanner handles like any index-less tree.
var versions = map[string]bool{
	"Directory Transport Version: 1.0\n": true,
	"Directory Transport Version: 1.1\n": true,
}

// Tree is a scanned image root.
type Tree struct {
	Dir          string // absolute path of the root
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
	s := &scanner{root: abs, repos: map[string]*repoBuild{}}
	s.walk("")
	s.scanImages()
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	t := &Tree{Dir: abs}
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
	root  string
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
				js := &scanner{root: s.root}
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
	s.errs = append(s.errs, fmt.Errorf("%s: %s", filepath.Join(s.root, filepath.FromSlash(rel)), fmt.Sprintf(format, args...)))
}

func (s *scanner) walk(rel string) {
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		s.errs = append(s.errs, err)
		return
	}
	var hasManifest, hasVersion bool
	for _, e := range entries {
		switch e.Name() {
		case ManifestFile:
			hasManifest = true
		case VersionFile:
			hasVersion = true
		}
	}
	if hasManifest || hasVersion {
		if !hasManifest || !hasVersion {
			s.fail(rel, "has only one of %s and %s; a dir: image directory holds both", ManifestFile, VersionFile)
			return
		}
		s.jobs = append(s.jobs, imageJob{rel: rel, entries: entries})
		return
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			s.walk(path.Join(rel, e.Name()))
		}
	}
}

// image reads and checks the image directory rel (slash-separated); it
// returns nil, with s.errs saying why, if the directory cannot be served.
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
	byName := map[string]fs.DirEntry{}
	for _, e := range entries {
		byName[e.Name()] = e
	}
	for _, f := range []string{VersionFile, ManifestFile} {
		if !byName[f].Type().IsRegular() {
			s.fail(path.Join(rel, f), "is not a regular file (symbolic links are not served)")
			return nil
		}
	}
	version, err := s.read(path.Join(rel, VersionFile), 1024)
	if err != nil {
		s.errs = append(s.errs, err)
		return nil
	}
	if !versions[string(version)] {
		s.fail(path.Join(rel, VersionFile), "content %q is not \"Directory Transport Version: 1.0 or 1.1\"", version)
		return nil
	}

	type manifest struct {
		file File
		info ManifestInfo
	}
	var manifests []manifest // [0] is manifest.json, then the children
	blobs := map[string]File{}
	children := map[string]bool{}
	readManifest := func(fileRel, wantHex string) bool {
		data, err := s.read(fileRel, MaxManifestSize)
		if err != nil {
			s.errs = append(s.errs, err)
			return false
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		if wantHex != "" && h != wantHex {
			s.fail(fileRel, "content digest is sha256:%s, not the one its name says", h)
			return false
		}
		info, err := SniffMediaType(data)
		if err != nil {
			s.fail(fileRel, "%v", err)
			return false
		}
		manifests = append(manifests, manifest{File{Digest: "sha256:" + h, MediaType: info.MediaType, Size: int64(len(data)), Path: fileRel}, info})
		return true
	}
	if !readManifest(path.Join(rel, ManifestFile), "") {
		return nil
	}
	for _, e := range entries {
		n := e.Name()
		childHex, isChild := strings.CutSuffix(n, childSuffix)
		isChild = isChild && isHex64(childHex)
		if !isChild && !isHex64(n) {
			continue // signatures and other files skopeo may write are not served
		}
		if !e.Type().IsRegular() {
			s.fail(path.Join(rel, n), "is not a regular file (symbolic links are not served)")
			continue
		}
		if isChild {
			if readManifest(path.Join(rel, n), childHex) {
				children["sha256:"+childHex] = true
			}
			continue
		}
		// No Size: nginx and the handler stat the file when serving it,
		// and an lstat per blob would be most of the scan's system time.
		blobs["sha256:"+n] = File{Digest: "sha256:" + n, Path: path.Join(rel, n)}
	}
	ok := true
	for _, m := range manifests {
		for _, d := range m.info.Blobs {
			if _, found := blobs[d]; !found {
				s.fail(m.file.Path, "references blob %s, which is not in the directory", d)
				ok = false
			}
		}
		for _, d := range m.info.Children {
			if !children[d] {
				s.fail(m.file.Path, "lists manifest %s, which is not in the directory as %s%s", d, strings.TrimPrefix(d, "sha256:"), childSuffix)
				ok = false
			}
		}
	}
	if !ok {
		return nil
	}

	files := make([]File, 0, len(manifests))
	for _, m := range manifests {
		files = append(files, m.file)
	}
	return &imageResult{name: name, tag: tag, manifests: files, blobs: sortedFiles(blobs)}
}

// read returns the content of the file rel, refusing more than limit bytes.
func (s *scanner) read(rel string, limit int64) ([]byte, error) {
	p := filepath.Join(s.root, filepath.FromSlash(rel))
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return data, nil
}

func sortedFiles(m map[string]File) []File {
	out := make([]File, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out
}
