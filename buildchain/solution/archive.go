package solution

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/metalk8s/buildchain/buildchain/solution/isofs"
)

// node is one file of an archive, whether read from a directory or an ISO.
type node struct {
	Path    string // slash-separated, relative to the archive root
	Mode    fs.FileMode
	Size    int64
	Target  string // symbolic link target
	ISOName string // primary ISO 9660 identifier (ISO archives only)
	// id identifies the content's storage (inode, or ISO extent), so that
	// hard links and shared extents are hashed once.
	id string
}

// archive is what validation and inspection read: an ISO image or the
// directory tree it would be made from.
type archive interface {
	nodes() []node // sorted by path
	open(n node) (io.ReadCloser, error)
	close() error
}

// openArchive opens p as a directory tree or an ISO image. The problems it
// returns are structural ones found while reading an ISO.
func openArchive(p string) (archive, *isofs.Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		a, err := openDir(p)
		return a, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is neither a directory nor an ISO image file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	im, err := isofs.Open(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	a := &isoArchive{f: f, im: im, byPath: map[string]isofs.Entry{}}
	for _, e := range im.Entries {
		a.byPath[e.Path] = e
		n := node{Path: e.Path, Mode: e.Mode, Size: e.Size, Target: e.Target, ISOName: e.ISOName}
		if e.Mode.IsRegular() {
			n.id = "extent:" + e.ExtentKey()
		}
		a.list = append(a.list, n)
	}
	sort.Slice(a.list, func(i, j int) bool { return a.list[i].Path < a.list[j].Path })
	return a, im, nil
}

type isoArchive struct {
	f      *os.File
	im     *isofs.Image
	list   []node
	byPath map[string]isofs.Entry
}

func (a *isoArchive) nodes() []node { return a.list }
func (a *isoArchive) close() error  { return a.f.Close() }
func (a *isoArchive) open(n node) (io.ReadCloser, error) {
	e, ok := a.byPath[n.Path]
	if !ok {
		return nil, fs.ErrNotExist
	}
	r, err := a.im.Open(e)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(r), nil
}

type dirArchive struct {
	root string
	list []node
}

// openDir lists a tree without following any symbolic link: links are
// entries to check, never paths to read through.
func openDir(root string) (*dirArchive, error) {
	a := &dirArchive{root: root}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := node{Path: filepath.ToSlash(rel), Mode: fi.Mode(), Size: fi.Size()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if fi.Mode().IsRegular() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n.id = fmt.Sprintf("inode:%d:%d", st.Dev, st.Ino)
			}
		}
		if fi.IsDir() {
			n.Size = 0
		}
		a.list = append(a.list, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(a.list, func(i, j int) bool { return a.list[i].Path < a.list[j].Path })
	return a, nil
}

func (a *dirArchive) nodes() []node { return a.list }
func (a *dirArchive) close() error  { return nil }
func (a *dirArchive) open(n node) (io.ReadCloser, error) {
	if !n.Mode.IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", n.Path)
	}
	// O_NOFOLLOW: the file was listed as regular; never read through a
	// link swapped in since.
	f, err := os.OpenFile(filepath.Join(a.root, filepath.FromSlash(n.Path)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
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
