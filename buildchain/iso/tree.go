package iso

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

type kind uint8

const (
	kindFile kind = iota
	kindDir
	kindSymlink
)

// node is one name in the image. Hard links are distinct nodes sharing an
// inode.
type node struct {
	name     string // UTF-8 name as in the source; "" for the root
	kind     kind
	parent   *node
	children []*node // directories only, sorted by name once frozen
	byName   map[string]*node
	ino      *inode
	target   string // symlink target

	// The source directory the node was read from and its name there,
	// by which WriteFile recognises its own outputs (see excludeOutput).
	srcDir  devIno
	srcName string

	// Identifiers, computed when the tree is frozen.
	isoName []byte // primary, d-characters
	jName   []byte // Joliet, UCS-2 big-endian

	// Directory layout: extent and size in each tree, path table numbers.
	lba, size   uint32
	jLBA, jSize uint32
	ptNum       int
	jPtNum      int
	depth       int
	ce          []cePos // continuation areas of this node's record
	dotCE       []cePos // continuation areas of the root's "." record
	ceLBA       uint32  // continuation areas of this directory's records
	ceSectors   uint32
}

// inode holds what hard links share.
type inode struct {
	src    string // source path, for reading and for error messages
	mode   uint32 // POSIX st_mode, type bits included
	uid    uint32
	gid    uint32
	mtime  time.Time
	size   int64
	nlink  uint32 // links inside the image
	serial uint32 // PX file serial number, assigned in walk order
	data   *extent
}

// extent is file data as stored once in the image.
type extent struct {
	src  string
	size int64
	lba  uint32
}

type devIno struct{ dev, ino uint64 }

// Builder collects a tree from one or more sources, then writes it. Use it
// when the image is assembled from several places or from a file list;
// Write covers the single-directory case.
type Builder struct {
	opts   Options
	epoch  time.Time
	clamp  bool
	root   *node
	links  map[devIno]*inode
	frozen bool
}

// New checks the options and returns an empty image.
func New(opts Options) (*Builder, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	epoch, clamp, err := resolveEpoch(&opts)
	if err != nil {
		return nil, err
	}
	b := &Builder{opts: opts, epoch: epoch, clamp: clamp, links: map[devIno]*inode{}}
	b.root = &node{kind: kindDir, byName: map[string]*node{}, ino: &inode{mode: syscall.S_IFDIR | 0o755, mtime: clampRecordDate(epoch)}}
	return b, nil
}

// AddTree adds the contents of the directory src under isoDir ("" or "/"
// for the image root), recursively. Symlinks are stored as symlinks and
// never followed, except src itself which may be a symlink to a directory.
// The root directory's own mode, owner and date come from src when isoDir
// is the root.
func (b *Builder) AddTree(isoDir, src string) error {
	if b.frozen {
		return errors.New("iso: AddTree after Write")
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("iso: source tree: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("iso: source tree %s is not a directory", src)
	}
	dir, err := b.mkdirs(isoDir)
	if err != nil {
		return err
	}
	if dir == b.root {
		b.setAttrs(dir.ino, src, fi)
	}
	return b.walk(dir, src, idOf(fi))
}

// Add adds one source path at isoPath: a regular file, a symlink (stored,
// not followed) or a directory (its own attributes only, not its
// contents). Missing parent directories are created with mode 0755.
func (b *Builder) Add(isoPath, src string) error {
	if b.frozen {
		return errors.New("iso: Add after Write")
	}
	dirPart, name := path.Split(strings.Trim(path.Clean("/"+isoPath), "/"))
	if name == "" {
		return fmt.Errorf("iso: %q: empty name in image", isoPath)
	}
	dir, err := b.mkdirs(dirPart)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	if n := dir.byName[name]; n != nil && n.kind == kindDir && fi.IsDir() {
		b.setAttrs(n.ino, src, fi)
		return nil
	}
	n, err := b.addEntry(dir, name, src, fi)
	if err != nil {
		return err
	}
	if pfi, err := os.Stat(filepath.Dir(src)); err == nil {
		n.srcDir, n.srcName = idOf(pfi), filepath.Base(src)
	}
	return nil
}

func (b *Builder) mkdirs(p string) (*node, error) {
	dir := b.root
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if part == "" {
			continue
		}
		n := dir.byName[part]
		if n == nil {
			n = &node{name: part, kind: kindDir, parent: dir, byName: map[string]*node{},
				ino: &inode{mode: syscall.S_IFDIR | 0o755, mtime: clampRecordDate(b.epoch), src: part}}
			if err := b.link(dir, n); err != nil {
				return nil, err
			}
		} else if n.kind != kindDir {
			return nil, fmt.Errorf("iso: %s is not a directory in the image", n.ino.src)
		}
		dir = n
	}
	return dir, nil
}

func (b *Builder) link(dir, n *node) error {
	if old := dir.byName[n.name]; old != nil {
		return fmt.Errorf("iso: %s and %s both map to the same name %q in the image", old.ino.src, n.ino.src, b.isoPath(n))
	}
	if len(n.name) > 255 {
		return fmt.Errorf("iso: %s: name is %d bytes long, more than 255", n.ino.src, len(n.name))
	}
	dir.byName[n.name] = n
	dir.children = append(dir.children, n)
	return nil
}

func (b *Builder) isoPath(n *node) string {
	if n.parent == nil {
		return "/"
	}
	p := n.name
	for d := n.parent; d.parent != nil; d = d.parent {
		p = d.name + "/" + p
	}
	return "/" + p
}

// walk adds the entries of the source directory src, whose identity is
// id, under dir.
func (b *Builder) walk(dir *node, src string, id devIno) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	for _, e := range entries { // ReadDir sorts by name
		p := filepath.Join(src, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("iso: %w", err)
		}
		n, err := b.addEntry(dir, e.Name(), p, fi)
		if err != nil {
			return err
		}
		n.srcDir, n.srcName = id, e.Name()
		if n.kind == kindDir {
			if err := b.walk(n, p, idOf(fi)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Builder) addEntry(dir *node, name, src string, fi fs.FileInfo) (*node, error) {
	if !validName(name) {
		return nil, fmt.Errorf("iso: %s: file name is not valid UTF-8 or contains NUL or '/'", src)
	}
	n := &node{name: name, parent: dir}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch mode := fi.Mode(); {
	case mode.IsDir():
		n.kind = kindDir
		n.byName = map[string]*node{}
		n.ino = &inode{}
		b.setAttrs(n.ino, src, fi)
	case mode.IsRegular(), mode&fs.ModeSymlink != 0:
		if mode.IsRegular() {
			n.kind = kindFile
		} else {
			n.kind = kindSymlink
			t, err := os.Readlink(src)
			if err != nil {
				return nil, fmt.Errorf("iso: %w", err)
			}
			if t == "" {
				return nil, fmt.Errorf("iso: %s: empty symlink target", src)
			}
			n.target = t
		}
		var key devIno
		if st != nil {
			key = devIno{uint64(st.Dev), uint64(st.Ino)}
		}
		if ino := b.links[key]; st != nil && ino != nil {
			n.ino = ino
		} else {
			n.ino = &inode{}
			b.setAttrs(n.ino, src, fi)
			if st != nil {
				b.links[key] = n.ino
			}
		}
	default:
		return nil, fmt.Errorf("iso: %s: cannot store a %s in an ISO image", src, fsutil.TypeName(mode))
	}
	if err := b.link(dir, n); err != nil {
		return nil, err
	}
	return n, nil
}

func idOf(fi fs.FileInfo) devIno {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return devIno{uint64(st.Dev), uint64(st.Ino)}
	}
	return devIno{}
}

// excludeOutput drops from the image what WriteFile and its peers write
// into dir, the output directory, when dir is also a source directory:
// the image base, its temporary files, SHA256SUM (unless NoChecksumFile)
// and the lock file. Entries are recognised by their source directory's
// device and inode, so that paths spelled differently, or through
// symlinks, still match.
func (b *Builder) excludeOutput(dir, base string) error {
	if b.frozen {
		return nil // write refuses it
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("iso: output directory: %w", err)
	}
	out := idOf(fi)
	if out == (devIno{}) {
		return nil
	}
	drop := func(n *node) bool {
		if n.srcDir != out {
			return false
		}
		switch {
		case n.srcName == base, n.srcName == sumLockName, isTemp(n.srcName, base):
			return true
		case n.srcName == "SHA256SUM":
			return !b.opts.NoChecksumFile
		}
		return false
	}
	var visit func(d *node)
	visit = func(d *node) {
		kept := d.children[:0]
		for _, c := range d.children {
			if drop(c) {
				delete(d.byName, c.name)
				continue
			}
			if c.kind == kindDir {
				visit(c)
			}
			kept = append(kept, c)
		}
		clear(d.children[len(kept):])
		d.children = kept
	}
	visit(b.root)
	return nil
}

// The last dates ISO 9660 can hold: the 7-byte dates of directory records
// (and Rock Ridge TF entries) count years since 1900 in one byte (ECMA-119
// 9.1.5), the 17-byte volume dates have four digits (8.4.26.1). A later
// date would wrap (2300 reads back as 2044); it is clamped instead, as an
// mtime after the epoch is clamped to the epoch.
var (
	maxRecordDate = time.Date(2155, 12, 31, 23, 59, 59, 0, time.UTC)
	maxVolumeDate = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// clampRecordDate brings t within what a directory record can hold; dates
// before 1970 become the Unix epoch, as they always did.
func clampRecordDate(t time.Time) time.Time {
	if t.After(maxRecordDate) {
		return maxRecordDate
	}
	if t.Year() < 1970 {
		return time.Unix(0, 0).UTC()
	}
	return t
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return false
	}
	return strings.ToValidUTF8(s, "\uFFFD") == s
}

func (b *Builder) setAttrs(ino *inode, src string, fi fs.FileInfo) {
	ino.src = src
	ino.mtime = fi.ModTime().UTC().Truncate(time.Second)
	if b.clamp && ino.mtime.After(b.epoch) {
		ino.mtime = b.epoch
	}
	ino.mtime = clampRecordDate(ino.mtime)
	m := fi.Mode()
	ino.mode = uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		ino.mode |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		ino.mode |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		ino.mode |= syscall.S_ISVTX
	}
	switch {
	case m.IsDir():
		ino.mode |= syscall.S_IFDIR
	case m&fs.ModeSymlink != 0:
		ino.mode |= syscall.S_IFLNK
	default:
		ino.mode |= syscall.S_IFREG
		ino.size = fi.Size()
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino.uid, ino.gid = st.Uid, st.Gid
	}
	if b.opts.UID != nil {
		ino.uid = *b.opts.UID
	}
	if b.opts.GID != nil {
		ino.gid = *b.opts.GID
	}
}

// freeze sorts the tree, assigns serial numbers and link counts, and
// checks the limits of the format.
func (b *Builder) freeze() error {
	b.frozen = true
	var serial uint32
	seen := map[*inode]bool{}
	var visit func(n *node, depth int) error
	visit = func(n *node, depth int) error {
		n.depth = depth
		if !seen[n.ino] {
			seen[n.ino] = true
			serial++
			n.ino.serial = serial
			n.ino.nlink = 0
		}
		if n.kind == kindDir {
			sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
			n.ino.nlink = 2
			for _, c := range n.children {
				if err := visit(c, depth+1); err != nil {
					return err
				}
				if c.kind == kindDir {
					n.ino.nlink++
				}
			}
		} else {
			n.ino.nlink++
		}
		return nil
	}
	return visit(b.root, 1)
}

func errorf(n *node, format string, args ...any) error {
	return fmt.Errorf("iso: %s: "+format, append([]any{n.ino.src}, args...)...)
}
