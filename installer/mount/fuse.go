package mount

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/metalk8s/buildchain/buildchain/iso"
)

// ServeFUSECommand is the hidden installer subcommand that runs the FUSE
// server: `metalk8s-installer fuse-serve ISO MOUNTPOINT` must call
// ServeFUSE(ISO, MOUNTPOINT) and exit 1 on its error.
const ServeFUSECommand = "fuse-serve"

// fuseName is the FUSE subtype: mountinfo shows "fuse.metalk8s-iso", by
// which Current tells the installer's own mounts.
const fuseName = "metalk8s-iso"

// readyEnv names the descriptor on which a child server says it mounted.
const readyEnv = "METALK8S_FUSE_READY_FD"

// cacheTimeout: an archive never changes under its mount, so the kernel
// may keep names and attributes.
const cacheTimeout = time.Hour

// MountFUSE mounts the ISO at mountpoint, read-only, served by this
// process through the project's ISO reader (Rock Ridge names, modes,
// links). The caller ends it with Unmount and waits with Wait.
func MountFUSE(isoPath, mountpoint string) (*fuse.Server, error) {
	f, err := os.Open(isoPath)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	im, err := iso.Open(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not an ISO 9660 image: %w", isoPath, err)
	}
	to := cacheTimeout
	opts := &fs.Options{
		EntryTimeout: &to, AttrTimeout: &to, NegativeTimeout: &to,
		UID: 0, GID: 0,
		MountOptions: fuse.MountOptions{
			FsName: isoPath,
			Name:   fuseName,
			// nginx workers are not root.
			AllowOther: os.Geteuid() == 0,
			// Let the kernel check permissions against the image's modes.
			Options:     []string{"ro", "default_permissions"},
			DirectMount: true,
			// Read-only for the mount as well as the file system.
			DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
			MaxReadAhead:     1 << 20,
			// max_read: fewer, larger requests for the big files archives hold.
			MaxWrite: 1 << 20,
		},
	}
	srv, err := fs.Mount(mountpoint, &isoRoot{isoDir: isoDir{im: im, fsys: im.FS(), path: ".", inos: &inodes{byPath: map[string]uint64{}}}}, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("FUSE mount of %s at %s: %w", isoPath, mountpoint, err)
	}
	go func() { srv.Wait(); f.Close() }()
	return srv, nil
}

// ServeFUSE mounts the ISO at mountpoint and serves it until the mount
// goes (umount, fusermount -u) or a SIGTERM/SIGINT, which unmounts: what a
// systemd service runs, and what the installer starts as its child.
func ServeFUSE(isoPath, mountpoint string) error {
	srv, err := MountFUSE(isoPath, mountpoint)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		if err := srv.Unmount(); err != nil {
			syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		}
	}()
	if err := sdNotify("READY=1"); err != nil {
		srv.Unmount()
		return err
	}
	if fd, err := strconv.Atoi(os.Getenv(readyEnv)); err == nil {
		w := os.NewFile(uintptr(fd), "ready")
		fmt.Fprintln(w, "ready")
		w.Close()
	}
	srv.Wait()
	return nil
}

// sdNotify tells systemd (a Type=notify unit) that the mount is up, so
// that units ordered after it (the repository service) find it mounted.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notifying systemd on %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// isoDir is a directory of the image. Children are made on lookup and
// listing from the reader's tree, so mounting a 2 GB archive costs only
// its root until something is read.
type isoDir struct {
	fs.Inode
	im   *iso.Image
	fsys *iso.FS
	path string
	inos *inodes
}

// inodes numbers paths once, so a name looked up again (after the entry
// timeout) is the same inode, as on a disk file system.
type inodes struct {
	mu     sync.Mutex
	byPath map[string]uint64
}

func (n *inodes) of(p string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	ino, ok := n.byPath[p]
	if !ok {
		ino = uint64(len(n.byPath)) + 2 // 1 is the root
		n.byPath[p] = ino
	}
	return ino
}

type isoRoot struct{ isoDir }

var (
	_ fs.NodeLookuper   = (*isoDir)(nil)
	_ fs.NodeReaddirer  = (*isoDir)(nil)
	_ fs.NodeGetattrer  = (*isoDir)(nil)
	_ fs.NodeOpener     = (*isoFile)(nil)
	_ fs.NodeReader     = (*isoFile)(nil)
	_ fs.NodeGetattrer  = (*isoFile)(nil)
	_ fs.NodeReadlinker = (*isoLink)(nil)
	_ fs.NodeGetattrer  = (*isoLink)(nil)
)

func (d *isoDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return d.attr(d.path, out)
}

func (d *isoDir) attr(p string, out *fuse.AttrOut) syscall.Errno {
	fi, err := d.fsys.Lstat(p)
	if err != nil {
		return errno(err)
	}
	fillAttr(fi, &out.Attr)
	return 0
}

func (d *isoDir) child(name string) string {
	if d.path == "." {
		return name
	}
	return d.path + "/" + name
}

func (d *isoDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p := d.child(name)
	fi, err := d.fsys.Lstat(p)
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(fi, &out.Attr)
	var node fs.InodeEmbedder
	switch {
	case fi.IsDir():
		node = &isoDir{im: d.im, fsys: d.fsys, path: p, inos: d.inos}
	case fi.Mode()&iofs.ModeSymlink != 0:
		node = &isoLink{fsys: d.fsys, path: p}
	default:
		node = &isoFile{fsys: d.fsys, path: p}
	}
	ino := d.inos.of(p)
	out.Attr.Ino = ino
	return d.NewInode(ctx, node, fs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: ino}), 0
}

func (d *isoDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	es, err := d.fsys.ReadDir(d.path)
	if err != nil {
		return nil, errno(err)
	}
	out := make([]fuse.DirEntry, 0, len(es))
	for _, e := range es {
		var a fuse.Attr
		if fi, err := e.Info(); err == nil {
			fillAttr(fi, &a)
		}
		out = append(out, fuse.DirEntry{Name: e.Name(), Mode: a.Mode & syscall.S_IFMT})
	}
	return fs.NewListDirStream(out), 0
}

// isoFile is a regular file, read with pread on the image.
type isoFile struct {
	fs.Inode
	fsys *iso.FS
	path string

	once sync.Once
	r    io.ReaderAt
	err  error
}

func (f *isoFile) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fi, err := f.fsys.Lstat(f.path)
	if err != nil {
		return errno(err)
	}
	fillAttr(fi, &out.Attr)
	return 0
}

func (f *isoFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if err := f.open(); err != nil {
		return nil, 0, errno(err)
	}
	// The image does not change under the mount: keep the page cache.
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// open gets the reader's file once; Read calls it too, which orders its
// use after the assignment for the race detector (the kernel orders the
// requests, but the detector cannot see that).
func (f *isoFile) open() error {
	f.once.Do(func() {
		var h iofs.File
		h, f.err = f.fsys.Open(f.path)
		if f.err == nil {
			var ok bool
			if f.r, ok = h.(io.ReaderAt); !ok {
				f.err = errors.New("the ISO reader's file has no ReadAt")
			}
		}
	})
	return f.err
}

func (f *isoFile) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if err := f.open(); err != nil {
		return nil, errno(err)
	}
	n, err := f.r.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}

type isoLink struct {
	fs.Inode
	fsys *iso.FS
	path string
}

func (l *isoLink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := l.fsys.ReadLink(l.path)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}

func (l *isoLink) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fi, err := l.fsys.Lstat(l.path)
	if err != nil {
		return errno(err)
	}
	fillAttr(fi, &out.Attr)
	return 0
}

// fillAttr gives the kernel the image's own view: Rock Ridge modes, owners,
// link counts and dates.
func fillAttr(fi iofs.FileInfo, a *fuse.Attr) {
	m := fi.Mode()
	mode := uint32(m.Perm())
	switch {
	case m.IsDir():
		mode |= syscall.S_IFDIR
	case m&iofs.ModeSymlink != 0:
		mode |= syscall.S_IFLNK
	default:
		mode |= syscall.S_IFREG
	}
	if m&iofs.ModeSetuid != 0 {
		mode |= syscall.S_ISUID
	}
	if m&iofs.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	if m&iofs.ModeSticky != 0 {
		mode |= syscall.S_ISVTX
	}
	a.Mode = mode
	a.Size = uint64(fi.Size())
	if m&iofs.ModeSymlink == 0 && !m.IsDir() {
		a.Blocks = (a.Size + 511) / 512
	}
	a.Blksize = 2048
	t := fi.ModTime()
	a.SetTimes(&t, &t, &t)
	a.Nlink = 1
	if e, ok := fi.Sys().(*iso.Entry); ok {
		if e.Nlink > 0 {
			a.Nlink = e.Nlink
		}
		a.Uid, a.Gid = e.UID, e.GID
	}
}

func errno(err error) syscall.Errno {
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, iofs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, iofs.ErrInvalid):
		return syscall.EINVAL
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// fuseMounter runs the FUSE server as a child process, which stays when
// the installer exits, as fuseiso's daemon does.
type fuseMounter struct{ command []string }

func (fuseMounter) Method() Method { return FUSE }

func (m fuseMounter) Mount(source, target string) error {
	argv := m.command
	if len(argv) == 0 {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		argv = []string{self, ServeFUSECommand}
	}
	argv = append(append([]string(nil), argv...), source, target)
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	// The server's messages go to an unlinked file: read back on failure,
	// and never a pipe whose closing would kill the server with SIGPIPE.
	logf, err := os.CreateTemp("", "metalk8s-fuse-*.log")
	if err != nil {
		w.Close()
		return err
	}
	os.Remove(logf.Name())
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	// Its own session: a Ctrl-C of the installer must not take the mount.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("starting the FUSE server %s: %w", argv[0], err)
	}
	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) == "ready" {
		go cmd.Wait() // reaped when it ends with its mount
		return nil
	}
	werr := cmd.Wait()
	out, _ := io.ReadAll(io.NewSectionReader(logf, 0, 1<<16))
	return fmt.Errorf("FUSE server %s exited (%v) without mounting: %s", strings.Join(argv, " "), werr, strings.TrimSpace(string(out)))
}

// fuseisoMounter runs fuseiso, which daemonizes once mounted.
type fuseisoMounter struct{ program string }

func (fuseisoMounter) Method() Method { return FuseISO }

// fuseisoArgs: -n keeps it from writing ~/.mtab.fuseiso; the fsname is
// how Current finds the ISO again, the subtype how it knows fuseiso;
// allow_other lets nginx workers, which are not root, read.
func fuseisoArgs(source, target string, allowOther bool) []string {
	opts := "ro,fsname=" + source + ",subtype=fuseiso"
	if allowOther {
		opts += ",allow_other"
	}
	return []string{"-n", source, target, "-o", opts}
}

func (m fuseisoMounter) Mount(source, target string) error {
	if strings.ContainsAny(source, ",") {
		return fmt.Errorf("fuseiso cannot name %s in its options (a comma)", source)
	}
	prog := m.program
	if prog == "" {
		var err error
		if prog, err = exec.LookPath("fuseiso"); err != nil {
			return err
		}
	}
	out, err := exec.Command(prog, fuseisoArgs(source, target, os.Geteuid() == 0)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", prog, err, strings.TrimSpace(string(out)))
	}
	// fuseiso exits 0 on some errors; the mount is the proof.
	if in, err := At(target); err != nil || in == nil {
		return fmt.Errorf("%s exited without mounting %s: %s", prog, filepath.Base(source), strings.TrimSpace(string(out)))
	}
	return nil
}
