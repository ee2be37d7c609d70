package solution

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"
)

// archiveFS presents the validator's archive (the archive interface of
// archive.go) as an io/fs.FS, so that the image checks read it through
// dirlayout as they would any file system. It is a stop-gap for the merge
// with the branch that makes the archive an fs.FS itself, and goes away
// then. It implements dirlayout.DigestFS so that content shared by
// several names (hard links, shared ISO extents) is hashed once.
type archiveFS struct {
	v    *validator
	dirs map[string][]fs.DirEntry // directory → its entries, sorted
}

func newArchiveFS(v *validator) *archiveFS {
	f := &archiveFS{v: v, dirs: map[string][]fs.DirEntry{".": nil}}
	for _, n := range v.a.nodes() {
		dir := path.Dir(n.Path)
		f.dirs[dir] = append(f.dirs[dir], fs.FileInfoToDirEntry(nodeInfo{n}))
		if n.Mode.IsDir() {
			if _, ok := f.dirs[n.Path]; !ok {
				f.dirs[n.Path] = nil
			}
		}
	}
	for _, es := range f.dirs {
		sort.Slice(es, func(i, j int) bool { return es[i].Name() < es[j].Name() })
	}
	return f
}

func (f *archiveFS) node(op, name string) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return node{Path: ".", Mode: fs.ModeDir | 0o755}, nil
	}
	n, ok := f.v.byPath[name]
	if !ok {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

func (f *archiveFS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.node("stat", name)
	if err != nil {
		return nil, err
	}
	return nodeInfo{n}, nil
}

func (f *archiveFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.node("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return append([]fs.DirEntry(nil), f.dirs[name]...), nil
}

// Open opens a directory or a regular file. Links are never read through:
// they are entries for safety() to check.
func (f *archiveFS) Open(name string) (fs.File, error) {
	n, err := f.node("open", name)
	if err != nil {
		return nil, err
	}
	switch {
	case n.Mode.IsDir():
		return &archiveDir{info: nodeInfo{n}, entries: f.dirs[name]}, nil
	case n.Mode.IsRegular():
		rc, err := f.v.a.open(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &archiveFile{info: nodeInfo{n}, rc: rc}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file or directory")}
}

func (f *archiveFS) Digest(ctx context.Context, name string) (string, error) {
	n, err := f.node("open", name)
	if err != nil {
		return "", err
	}
	return f.v.digest(n)
}

type nodeInfo struct{ n node }

func (i nodeInfo) Name() string       { return path.Base(i.n.Path) }
func (i nodeInfo) Size() int64        { return i.n.Size }
func (i nodeInfo) Mode() fs.FileMode  { return i.n.Mode }
func (i nodeInfo) ModTime() time.Time { return time.Time{} }
func (i nodeInfo) IsDir() bool        { return i.n.Mode.IsDir() }
func (i nodeInfo) Sys() any           { return nil }

type archiveFile struct {
	info nodeInfo
	rc   io.ReadCloser
}

func (f *archiveFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *archiveFile) Read(p []byte) (int, error) { return f.rc.Read(p) }
func (f *archiveFile) Close() error               { return f.rc.Close() }

type archiveDir struct {
	info    nodeInfo
	entries []fs.DirEntry
}

func (d *archiveDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *archiveDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.n.Path, Err: errors.New("is a directory")}
}
func (d *archiveDir) Close() error { return nil }
func (d *archiveDir) ReadDir(count int) ([]fs.DirEntry, error) {
	if count <= 0 {
		es := d.entries
		d.entries = nil
		return es, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n := min(count, len(d.entries))
	es := d.entries[:n]
	d.entries = d.entries[n:]
	return es, nil
}
