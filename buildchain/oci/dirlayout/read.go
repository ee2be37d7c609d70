package dirlayout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Contents is what an image directory holds, in memory except the blobs:
// what Write lays out and Read hands back.
type Contents struct {
	// Manifest is the raw manifest.json: an image manifest or an index.
	Manifest  []byte
	MediaType types.MediaType
	// Children are the raw manifests an index lists, by digest.
	Children map[string][]byte
	// Blobs are the config and layer digests the manifests reference,
	// with their sizes.
	Blobs map[string]int64
}

// Dir is an image directory read from a file system.
type Dir struct {
	Contents
	Path string // the directory's name in the file system
	Top  *ParsedManifest
	// Manifests are manifest.json, then every child manifest file whose
	// content matches its name (listed by the index or not), by digest.
	Manifests []File
	// BlobFiles are the digests of every <hex> regular file, sorted: what
	// a registry may serve from the directory.
	BlobFiles []string

	fsys fs.FS
}

// File is one manifest file of an image directory.
type File struct {
	Path      string // slash-separated name in the file system
	Digest    string
	Size      int64
	MediaType types.MediaType
}

// Error is one fault of an image directory, at the file it concerns.
type Error struct {
	Path string // slash-separated name in the file system
	Err  error
}

func (e *Error) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errors splits an error of Read into the faults it joins, so that a
// caller can report each at its own path.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// DigestFS is a file system that gives the sha256 digest of its files
// itself, for example hashing once content that several names share.
type DigestFS interface {
	fs.FS
	Digest(ctx context.Context, name string) (string, error)
}

// Options say how far Read verifies.
type Options struct {
	// VerifyBlobs checks the size and sha256 of every blob the manifests
	// reference. Without it a blob need only be listed in the directory:
	// one ReadDir and no stat, which is what a server starting on a tree
	// of thousands of blobs can afford.
	VerifyBlobs bool
}

// IsImageDir reports whether a directory with these entries is an image
// directory: one holding manifest.json or version (a directory with only
// one of them is a broken image directory, which Read reports).
func IsImageDir(entries []fs.DirEntry) bool {
	for _, e := range entries {
		if k, _ := Classify(e.Name()); k == KindManifest || k == KindVersion {
			return true
		}
	}
	return false
}

// Read reads and checks the image directory dir of fsys: the version file,
// manifest.json, every child manifest against its name and the index's
// descriptor, and that every blob a manifest references is there (and,
// with opts.VerifyBlobs, its size and digest). Links and special files are
// refused wherever the layout expects a file. The error joins every fault
// found, each an *Error naming its file; the Dir holds what could be read
// despite them (nil only when the directory cannot be listed).
func Read(ctx context.Context, fsys fs.FS, dir string, opts Options) (*Dir, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, &Error{dir, err}
	}
	return ReadEntries(ctx, fsys, dir, entries, opts)
}

// ReadEntries is Read for a walker that has listed dir already (to see
// that it is an image directory): a tree of thousands of images is then
// listed once.
func ReadEntries(ctx context.Context, fsys fs.FS, dir string, entries []fs.DirEntry, opts Options) (*Dir, error) {
	d := &Dir{Path: dir, fsys: fsys, Contents: Contents{Blobs: map[string]int64{}}}
	var errs []error
	bad := func(name string, format string, args ...any) {
		errs = append(errs, &Error{path.Join(dir, name), fmt.Errorf(format, args...)})
	}
	regular := map[string]fs.DirEntry{}
	listed := map[string]bool{}
	var childNames []string
	for _, e := range entries {
		listed[e.Name()] = true
		k, digest := Classify(e.Name())
		if k == KindOther {
			continue // signatures and other files skopeo may write are not read
		}
		if !e.Type().IsRegular() {
			bad(e.Name(), "not a regular file (symbolic links and special files are refused in a dir: layout)")
			continue
		}
		regular[e.Name()] = e
		switch k {
		case KindChild:
			childNames = append(childNames, e.Name())
		case KindBlob:
			d.BlobFiles = append(d.BlobFiles, digest)
		}
	}
	slices.Sort(d.BlobFiles)
	_, hasManifest := regular[ManifestFile]
	_, hasVersion := regular[VersionFile]
	if !hasVersion && hasManifest {
		bad(VersionFile, "missing: the directory has only one of %s and %s; a dir: image directory holds both", ManifestFile, VersionFile)
	} else if hasVersion {
		data, err := readFile(fsys, path.Join(dir, VersionFile), maxVersionSize)
		if err != nil {
			errs = append(errs, err)
		} else if !ValidVersion(data) {
			bad(VersionFile, "content %q is not %q (or version 1.0)", data, Version)
		}
	}
	if !hasManifest {
		if hasVersion {
			bad(ManifestFile, "missing: the directory has only one of %s and %s; a dir: image directory holds both", ManifestFile, VersionFile)
		}
		return d, errors.Join(errs...)
	}

	mpath := path.Join(dir, ManifestFile)
	raw, err := readFile(fsys, mpath, MaxManifestSize)
	if err != nil {
		return d, errors.Join(append(errs, err)...)
	}
	top, err := ParseManifest(raw)
	if err != nil {
		bad(ManifestFile, "not an image manifest or index: %v", err)
		return d, errors.Join(errs...)
	}
	d.Manifest, d.MediaType, d.Top = raw, top.MediaType, top
	d.Manifests = append(d.Manifests, File{Path: mpath, Digest: digestOf(raw), Size: int64(len(raw)), MediaType: top.MediaType})

	// Every child file is read, listed or not: a server serves it by its
	// digest, so its content must be what its name says.
	type child struct {
		raw []byte
		m   *ParsedManifest
	}
	children := map[string]child{}
	for _, n := range childNames {
		_, want := Classify(n)
		p := path.Join(dir, n)
		data, err := readFile(fsys, p, MaxManifestSize)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got := digestOf(data); got != want {
			bad(n, "content digest is %s, not the %s its name says: the manifest is corrupt", got, want)
			continue
		}
		m, err := ParseManifest(data)
		if err != nil {
			bad(n, "not an image manifest or index: %v", err)
			continue
		}
		if m.MediaType.IsIndex() {
			bad(n, "%v", ErrNestedIndex)
			continue
		}
		children[want] = child{data, m}
		d.Manifests = append(d.Manifests, File{Path: p, Digest: want, Size: int64(len(data)), MediaType: m.MediaType})
	}

	// The manifests whose blobs must be here, with the file naming them.
	type source struct {
		name string
		m    *ParsedManifest
	}
	var sources []source
	if top.MediaType.IsIndex() {
		d.Children = map[string][]byte{}
		for _, c := range top.Manifests {
			cd := c.Digest.String()
			got, ok := children[cd]
			switch {
			case !ok:
				if !listed[ChildName(cd)] { // else reported above
					bad(ChildName(cd), "missing: the index lists the manifest %s", cd)
				}
			case int64(len(got.raw)) != c.Size:
				bad(ChildName(cd), "%d bytes; the index says %d", len(got.raw), c.Size)
			default:
				d.Children[cd] = got.raw
			}
		}
	} else {
		sources = append(sources, source{ManifestFile, top})
	}
	for _, cd := range slices.Sorted(maps.Keys(children)) {
		sources = append(sources, source{ChildName(cd), children[cd].m})
	}
	lister := map[string]string{} // blob → the first manifest listing it
	for _, s := range sources {
		if err := AddBlobs(s.m, d.Blobs); err != nil {
			bad(s.name, "%v", err)
			continue
		}
		for _, b := range s.m.Blobs() {
			if _, ok := lister[b.Digest.String()]; !ok {
				lister[b.Digest.String()] = s.name
			}
		}
	}
	for _, b := range slices.Sorted(maps.Keys(d.Blobs)) {
		name, size := BlobName(b), d.Blobs[b]
		e, ok := regular[name]
		if !ok {
			if !listed[name] { // else reported above
				bad(name, "missing: %s lists the blob %s (%d bytes), which is not in the directory", lister[b], b, size)
			}
			continue
		}
		if !opts.VerifyBlobs {
			continue
		}
		if err := ctx.Err(); err != nil {
			return d, err
		}
		info, err := e.Info()
		if err != nil {
			errs = append(errs, &Error{path.Join(dir, name), err})
			continue
		}
		if info.Size() != size {
			bad(name, "%d bytes; %s says %d", info.Size(), lister[b], size)
			continue
		}
		got, err := fileDigest(ctx, fsys, path.Join(dir, name))
		if err != nil {
			if ctx.Err() != nil {
				return d, ctx.Err()
			}
			errs = append(errs, &Error{path.Join(dir, name), err})
			continue
		}
		if got != b {
			bad(name, "content digest is %s, not %s: the blob is corrupt", got, b)
		}
	}
	return d, errors.Join(errs...)
}

// readFile returns the content of the regular file p, refusing more than
// limit bytes whatever the file claims.
func readFile(fsys fs.FS, p string, limit int64) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, &Error{p, err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &Error{p, err}
	}
	if int64(len(data)) > limit {
		return nil, &Error{p, fmt.Errorf("larger than %d bytes", limit)}
	}
	return data, nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func fileDigest(ctx context.Context, fsys fs.FS, p string) (string, error) {
	if dfs, ok := fsys.(DigestFS); ok {
		return dfs.Digest(ctx, p)
	}
	f, err := fsys.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return Digest(ctx, f)
}

// Digest returns the sha256 digest of what r yields, giving up with
// ctx's error as soon as ctx is done: a blob can be gigabytes.
func Digest(ctx context.Context, r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, r}); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// OpenBlob opens a blob the manifests reference. The reader checks size
// and digest as it goes: its last Read returns an error rather than
// io.EOF if the content is not what the manifest pinned, so that nothing
// copied from it is trusted before the end.
func (d *Dir) OpenBlob(digest string) (io.ReadCloser, error) {
	size, ok := d.Blobs[digest]
	if !ok {
		return nil, &Error{path.Join(d.Path, BlobName(digest)), errors.New("not a blob of the image")}
	}
	return d.openVerified(digest, size)
}

func (d *Dir) openVerified(digest string, size int64) (io.ReadCloser, error) {
	p := path.Join(d.Path, BlobName(digest))
	f, err := d.fsys.Open(p)
	if err != nil {
		return nil, &Error{p, err}
	}
	return &verifier{f: f, path: p, want: digest, size: size, h: sha256.New()}, nil
}

type verifier struct {
	f          fs.File
	path, want string
	size, n    int64
	h          hash.Hash
}

func (v *verifier) Read(p []byte) (int, error) {
	if rest := v.size - v.n + 1; int64(len(p)) > rest {
		p = p[:rest] // one byte past the size is enough to see it is too long
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case v.n > v.size:
		return n, &Error{v.path, fmt.Errorf("more than the %d bytes the manifest says", v.size)}
	case err == io.EOF:
		if v.n != v.size {
			return n, &Error{v.path, fmt.Errorf("%d bytes; the manifest says %d", v.n, v.size)}
		}
		if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, &Error{v.path, fmt.Errorf("content digest is %s, not %s: the blob is corrupt", got, v.want)}
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }
