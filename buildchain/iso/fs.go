package iso

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// FS is one tree of an image as an io/fs file system: fs.FS,
// fs.ReadDirFS, fs.StatFS and fs.ReadLinkFS, so that fs.WalkDir and the
// rest of io/fs treat an image and a directory (os.Root.FS) alike.
//
// Symbolic links are followed the way os.Root follows them: inside the
// tree only. A link to an absolute path, or one that climbs above the
// root, is an error, never a path outside the image.
type FS struct {
	im   *Image
	root *Entry
}

var (
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
	_ fs.ReadDirFS  = (*Image)(nil)
	_ fs.StatFS     = (*Image)(nil)
	_ fs.ReadLinkFS = (*Image)(nil)
)

// FS returns the primary tree, with its Rock Ridge names and modes.
func (im *Image) FS() *FS { return &FS{im, im.root} }

// JolietFS returns the Joliet tree, or nil when the image has none.
func (im *Image) JolietFS() *FS {
	if im.jroot == nil {
		return nil
	}
	return &FS{im, im.jroot}
}

// Open, ReadDir, Stat, Lstat and ReadLink make the image itself the file
// system of its primary tree.
func (im *Image) Open(name string) (fs.File, error)          { return im.FS().Open(name) }
func (im *Image) ReadDir(name string) ([]fs.DirEntry, error) { return im.FS().ReadDir(name) }
func (im *Image) Stat(name string) (fs.FileInfo, error)      { return im.FS().Stat(name) }
func (im *Image) Lstat(name string) (fs.FileInfo, error)     { return im.FS().Lstat(name) }
func (im *Image) ReadLink(name string) (string, error)       { return im.FS().ReadLink(name) }

var (
	errNotDir  = errors.New("not a directory")
	errEscapes = errors.New("path escapes from the image")
	errLoop    = errors.New("too many levels of symbolic links")
)

// lookup resolves name, following symbolic links in every component but
// the last, and in the last one too when follow is set.
func (f *FS) lookup(op, name string, follow bool) (*Entry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	cur := f.root
	if name == "." {
		return cur, nil
	}
	comps := strings.Split(name, "/")
	hops := 0
	for i := 0; i < len(comps); i++ {
		c := comps[i]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur.parent == nil {
				return nil, &fs.PathError{Op: op, Path: name, Err: errEscapes}
			}
			cur = cur.parent
			continue
		}
		if !cur.Mode.IsDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: errNotDir}
		}
		next := cur.child(c)
		if next == nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if next.Mode&fs.ModeSymlink != 0 && (i < len(comps)-1 || follow) {
			if hops++; hops > maxLinkHops {
				return nil, &fs.PathError{Op: op, Path: name, Err: errLoop}
			}
			if strings.HasPrefix(next.Target, "/") {
				return nil, &fs.PathError{Op: op, Path: name, Err: errEscapes}
			}
			comps = append(strings.Split(next.Target, "/"), comps[i+1:]...)
			i = -1
			continue
		}
		cur = next
	}
	return cur, nil
}

// Open opens the named file, following symbolic links.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if e.Mode.IsDir() {
		return &dirFile{e: e}, nil
	}
	if e.Mode.IsRegular() && e.extents == nil && e.Size > 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("its data is refused (see the image's problems)")}
	}
	return &file{f: f, e: e}, nil
}

// ReadDir lists a directory in name order.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !e.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return dirEntries(e.children), nil
}

func dirEntries(es []*Entry) []fs.DirEntry {
	out := make([]fs.DirEntry, len(es))
	for i, c := range es {
		out[i] = fs.FileInfoToDirEntry(fileInfo{c})
	}
	return out
}

// Stat describes the named file, following symbolic links.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{e}, nil
}

// Lstat describes the named file without following a final symbolic link.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{e}, nil
}

// ReadLink returns a symbolic link's target as recorded.
func (f *FS) ReadLink(name string) (string, error) {
	e, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Target, nil
}

type fileInfo struct{ e *Entry }

func (i fileInfo) Name() string {
	if i.e.parent == nil {
		return "."
	}
	return i.e.name
}
func (i fileInfo) Size() int64        { return i.e.Size }
func (i fileInfo) Mode() fs.FileMode  { return i.e.Mode }
func (i fileInfo) ModTime() time.Time { return i.e.ModTime }
func (i fileInfo) IsDir() bool        { return i.e.Mode.IsDir() }
func (i fileInfo) Sys() any           { return i.e }

// file is an open regular file (or a special file, which reads as empty).
type file struct {
	f   *FS
	e   *Entry
	off int64
}

func (f *file) Stat() (fs.FileInfo, error) { return fileInfo{f.e}, nil }
func (f *file) Close() error               { return nil }

func (f *file) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		off += f.e.Size
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.e.name, Err: fs.ErrInvalid}
	}
	f.off = off
	return off, nil
}

// ReadAt reads the data across the file's extents.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.e.name, Err: fs.ErrInvalid}
	}
	if !f.e.Mode.IsRegular() {
		return 0, io.EOF
	}
	n := 0
	base := int64(0)
	for _, x := range f.e.extents {
		if n == len(p) {
			break
		}
		end := base + int64(x.Size)
		if off < end {
			want := min(int64(len(p)-n), end-off)
			m, err := f.f.im.r.ReadAt(p[n:n+int(want)], int64(x.LBA)*sectorSize+(off-base))
			n += m
			off += int64(m)
			if err != nil && !(err == io.EOF && int64(m) == want) {
				return n, fmt.Errorf("%s: %w", f.e.name, err)
			}
		}
		base = end
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// dirFile is an open directory.
type dirFile struct {
	e   *Entry
	off int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return fileInfo{d.e}, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.e.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.e.children[d.off:]
	if n > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(n, len(rest))]
	}
	d.off += len(rest)
	return dirEntries(rest), nil
}
