package solution

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
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

// archive is what validation and inspection read: an ISO image's primary
// tree (an *iso.Image) or a directory through os.Root, which follows no
// link out of the directory. It is the archive's fs.FS, listed once, with
// two additions for the readers it is handed to (dirlayout, registrygen):
// Open opens only what the listing holds, and checks it is still the file
// listed; Digest (dirlayout.DigestFS) hashes content several names share
// once.
type archive struct {
	fsys   fs.FS
	list   []node // sorted by path
	byPath map[string]node
	closer io.Closer

	mu     sync.Mutex
	hashed map[string]string // node id → sha256 digest
}

var (
	_ fs.ReadDirFS       = (*archive)(nil)
	_ fs.StatFS          = (*archive)(nil)
	_ fs.ReadLinkFS      = (*archive)(nil)
	_ dirlayout.DigestFS = (*archive)(nil)
)

// openArchive opens p as a directory tree or an ISO image. The image is
// returned for ISOs: its volume facts and the structural problems found
// while reading it.
func openArchive(p string) (*archive, *iso.Image, error) {
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
	block := fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0
	if !fi.Mode().IsRegular() && !block {
		return nil, nil, fmt.Errorf("%s is neither a directory, an ISO image file nor a block device", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	// A block device (a Solution on a CD-ROM drive or a loop device) has
	// no size in its stat: seeking to its end gives it.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	im, err := iso.Open(f, size)
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

// listArchive lists fsys without following any symbolic link: links are
// entries to check, never paths to read through.
func listArchive(fsys fs.FS, closer io.Closer) (*archive, error) {
	a := &archive{fsys: fsys, closer: closer, byPath: map[string]node{}, hashed: map[string]string{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		fi, err := d.Info() // WalkDir's entries are lstat'ed
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
		a.byPath[p] = n
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

func (a *archive) nodes() []node { return a.list }
func (a *archive) close() error  { return a.closer.Close() }

// node returns the listed node of name.
func (a *archive) node(op, name string) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return node{Path: ".", Mode: fs.ModeDir}, nil
	}
	n, ok := a.byPath[name]
	if !ok {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

// Open opens a listed directory or regular file. Links are never read
// through, even to a file inside the archive: they are entries for
// safety() to check.
func (a *archive) Open(name string) (fs.File, error) {
	n, err := a.node("open", name)
	if err != nil {
		return nil, err
	}
	if !n.Mode.IsDir() && !n.Mode.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file or directory")}
	}
	f, err := a.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	// The file read must be the file listed: never one swapped in since,
	// through a link or a rename, even one that stays inside the archive.
	fi, err := f.Stat()
	if err == nil && (fi.Mode().Type() != n.Mode.Type() || storageID(fi) != n.id) {
		err = &fs.PathError{Op: "open", Path: name, Err: errors.New("changed since it was listed")}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadDir, Stat, Lstat and ReadLink pass through: listing and link checks
// need no content, and dirlayout refuses a link where it wants a file.
func (a *archive) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(a.fsys, name) }
func (a *archive) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(a.fsys, name) }
func (a *archive) Lstat(name string) (fs.FileInfo, error)     { return fs.Lstat(a.fsys, name) }
func (a *archive) ReadLink(name string) (string, error)       { return fs.ReadLink(a.fsys, name) }

// Digest hashes a regular file once per distinct content storage: a blob
// hard-linked into several image directories, or one ISO extent several
// records share, is read once.
func (a *archive) Digest(ctx context.Context, name string) (string, error) {
	n, err := a.node("open", name)
	if err != nil {
		return "", err
	}
	if n.id != "" {
		a.mu.Lock()
		d, ok := a.hashed[n.id]
		a.mu.Unlock()
		if ok {
			return d, nil
		}
	}
	f, err := a.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d, err := dirlayout.Digest(ctx, f)
	if err != nil {
		return "", err
	}
	if n.id != "" {
		a.mu.Lock()
		a.hashed[n.id] = d
		a.mu.Unlock()
	}
	return d, nil
}

// readSmall reads a whole listed file of at most limit bytes.
func readSmall(a *archive, n node, limit int64) ([]byte, error) {
	if n.Size > limit {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed", n.Size, limit)
	}
	if !n.Mode.IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", n.Path)
	}
	f, err := a.Open(n.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
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
