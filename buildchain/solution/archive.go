package solution

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/metalk8s/buildchain/buildchain/iso"
)

// node is one file of an archive, whether read from a directory or an ISO.
type node struct {
	Path    string // slash-separated, relative to the archive root
	Mode    fs.FileMode
	Size    int64
	Target  string // symbolic link target
	ISOName string // primary ISO 9660 identifier (ISO archives only)
	// id identifies the content's storage (inode, or ISO extent), so that
	// hard links and shared extents are hashed once, and so that a file
	// opened is the file listed.
	id string
}

// archive is what validation and inspection read: an ISO image or the
// directory tree it would be made from.
type archive interface {
	nodes() []node // sorted by path
	open(n node) (io.ReadCloser, error)
	close() error
}

// openArchive opens p as a directory tree or an ISO image. The image is
// returned for ISOs: its volume facts and the structural problems found
// while reading it.
func openArchive(p string) (archive, *iso.Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		root, err := os.OpenRoot(p)
		if err != nil {
			return nil, nil, err
		}
		a, err := listArchive(root.FS(), root)
		if err != nil {
			root.Close()
			return nil, nil, err
		}
		return a, nil, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is neither a directory nor an ISO image file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	im, err := iso.Open(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	a, err := listArchive(im, f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	return a, im, nil
}

// fsArchive is an archive read through io/fs: an ISO image's primary tree
// or a directory through os.Root, which never leaves the directory.
type fsArchive struct {
	fsys   fs.FS
	list   []node
	closer io.Closer
}

// listArchive lists fsys without following any symbolic link: links are
// entries to check, never paths to read through.
func listArchive(fsys fs.FS, closer io.Closer) (*fsArchive, error) {
	a := &fsArchive{fsys: fsys, closer: closer}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := node{Path: p, Mode: fi.Mode(), Size: fi.Size(), id: storageID(fi)}
		if e, ok := fi.Sys().(*iso.Entry); ok {
			n.ISOName = e.ISOName
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if n.Target, err = fs.ReadLink(fsys, p); err != nil {
				return err
			}
		}
		if fi.IsDir() {
			n.Size = 0
		}
		a.list = append(a.list, n)
		if fi.IsDir() && !utf8.ValidString(d.Name()) {
			// io/fs cannot name what is below; the name is reported.
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(a.list, func(i, j int) bool { return a.list[i].Path < a.list[j].Path })
	return a, nil
}

// storageID names where a regular file's content is stored, or "".
func storageID(fi fs.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return ""
	}
	switch s := fi.Sys().(type) {
	case *iso.Entry:
		return "extent:" + s.ExtentKey()
	case *syscall.Stat_t:
		return fmt.Sprintf("inode:%d:%d", s.Dev, s.Ino)
	}
	return ""
}

func (a *fsArchive) nodes() []node { return a.list }
func (a *fsArchive) close() error  { return a.closer.Close() }

func (a *fsArchive) open(n node) (io.ReadCloser, error) {
	if !n.Mode.IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", n.Path)
	}
	f, err := a.fsys.Open(n.Path)
	if err != nil {
		return nil, err
	}
	// The file read must be the file listed: never read through a link
	// swapped in since, even one that stays inside the archive.
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || storageID(fi) != n.id) {
		err = fmt.Errorf("%s changed since it was listed", n.Path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readSmall reads a whole file of at most limit bytes.
func readSmall(a archive, n node, limit int64) ([]byte, error) {
	if n.Size > limit {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed", n.Size, limit)
	}
	rc, err := a.open(n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errors.New("file grew while being read")
	}
	return data, nil
}

// splitPath returns the components of a slash path.
func splitPath(p string) []string { return strings.Split(p, "/") }
