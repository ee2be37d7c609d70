// Package mount mounts MetalK8s archives read-only where the installer
// serves them (/srv/scality/<name>-<version>), and makes those mounts come
// back after a reboot (MetalK8s #1235: they did not, and the registry was
// down). An ISO is mounted by the first method that works: the kernel's
// iso9660 driver on a loop device (or the CD-ROM itself), the project's
// own ISO reader behind FUSE, then fuseiso. A directory is bind-mounted
// read-only at the same place, so every archive is found at one path.
//
// Every mount goes through a change.Tx: recorded for the report, skipped
// under --dry-run, undone by Rollback. A mount already there with the same
// source is "unchanged"; one with another source is an error naming both.
// See docs/installer-archives.md.
package mount

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/metalk8s/buildchain/installer/change"
)

// Method is how an archive is mounted (--mount-method).
type Method string

const (
	Auto    Method = "auto"    // kernel, then fuse, then fuseiso
	Kernel  Method = "kernel"  // iso9660 through a loop device, or a CD-ROM
	FUSE    Method = "fuse"    // the installer's own ISO reader behind go-fuse
	FuseISO Method = "fuseiso" // the fuseiso program
	Dir     Method = "dir"     // a directory archive, bind-mounted read-only
)

// ParseMethod reads --mount-method. "dir" is not a choice: a directory is
// always bind-mounted, whatever the flag says.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case "":
		return Auto, nil
	case Auto, Kernel, FUSE, FuseISO:
		return m, nil
	}
	return "", fmt.Errorf("mount method %q: want auto, kernel, fuse or fuseiso", s)
}

// Mounter mounts one kind of source read-only at an existing empty
// directory (real paths, after --root).
type Mounter interface {
	Method() Method
	Mount(source, target string) error
}

// Options chooses how to mount.
type Options struct {
	Method Method // Auto when empty
	// FUSECommand starts the FUSE server as a child process that outlives
	// the installer; the ISO path and the mount point are appended. The
	// default is this executable with ServeFUSECommand: the CLI must route
	// that hidden subcommand to ServeFUSE.
	FUSECommand []string
	// Fuseiso is the fuseiso program (default: found on PATH).
	Fuseiso string
}

// Mounters lists the mounters for an ISO (or a block device) that Ensure
// tries, in order, for the chosen method.
func (o Options) Mounters() ([]Mounter, error) {
	m := o.Method
	if m == "" {
		m = Auto
	}
	all := []Mounter{kernelMounter{}, fuseMounter{command: o.FUSECommand}, fuseisoMounter{program: o.Fuseiso}}
	if m == Auto {
		return all, nil
	}
	for _, x := range all {
		if x.Method() == m {
			return []Mounter{x}, nil
		}
	}
	return nil, fmt.Errorf("mount method %q: want auto, kernel, fuse or fuseiso", m)
}

// targetRE: mount points are /srv/scality/<name>-<version> and the like;
// a unit's Where= and file name take them as they are.
var targetRE = regexp.MustCompile(`^(/[A-Za-z0-9._+@:-]+)+$`)

func checkTarget(target string) error {
	if !targetRE.MatchString(target) || path.Clean(target) != target || strings.Contains(target, "/../") || strings.HasSuffix(target, "/..") || strings.Contains(target, "/./") {
		return fmt.Errorf("mount point %q: want an absolute clean path of letters, digits and ._+@:-", target)
	}
	return nil
}

// State is what is mounted at a mount point.
type State struct {
	Info   Info
	Method Method
	// Source is the archive behind the mount as far as the kernel says:
	// a loop device's backing file, a CD-ROM, a FUSE server's fsname; ""
	// for a bind mount, which the kernel names by its root inside its
	// file system only (SameSource compares those by inode).
	Source string
}

// Current returns what is mounted at the real path target, or nil.
func Current(target string) (*State, error) {
	in, err := At(target)
	if err != nil || in == nil {
		return nil, err
	}
	s := &State{Info: *in}
	switch {
	case in.FSType == "iso9660":
		s.Method, s.Source = Kernel, in.Source
		if n, ok := strings.CutPrefix(in.Source, "/dev/loop"); ok {
			b, err := os.ReadFile("/sys/block/loop" + n + "/loop/backing_file")
			if err != nil {
				return nil, fmt.Errorf("%s is mounted from %s, whose backing file cannot be read: %w", target, in.Source, err)
			}
			s.Source = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), " (deleted)")
		}
	case in.FSType == "fuse."+fuseName:
		s.Method, s.Source = FUSE, in.Source
	case in.FSType == "fuse.fuseiso":
		s.Method, s.Source = FuseISO, in.Source
	default:
		s.Method = Dir
	}
	return s, nil
}

// SameSource reports whether source (absolute, symlink-free) is what is
// mounted at target.
func (s *State) SameSource(source, target string) bool {
	src, err := os.Stat(source)
	if err != nil {
		return false
	}
	if s.Method == Dir {
		if !src.IsDir() {
			return false
		}
		tgt, err := os.Stat(target)
		return err == nil && os.SameFile(src, tgt)
	}
	cur, err := os.Stat(s.Source)
	return err == nil && os.SameFile(src, cur)
}

func (s *State) describe() string {
	src := s.Source
	if src == "" {
		src = s.Info.Source + ":" + s.Info.Root
	}
	return fmt.Sprintf("%s (%s, %s)", src, s.Method, s.Info.FSType)
}

// Ensure mounts source (an ISO file, a block device or a directory:
// absolute and symlink-free, as archive.Open resolves it) read-only at
// the host path target under tx's root. It returns the method of the
// mount, now or already there (Auto when a dry run did not mount).
func Ensure(tx *change.Tx, source, target string, o Options) (Method, error) {
	if err := checkTarget(target); err != nil {
		return "", err
	}
	fi, err := os.Stat(source)
	if err != nil {
		return "", fmt.Errorf("archive %w", err)
	}
	real := tx.Path(target)
	what := "mount " + target
	if cur, err := Current(real); err != nil {
		return "", err
	} else if cur != nil {
		if !cur.SameSource(source, real) {
			return "", fmt.Errorf("%s is already mounted from %s, not from %s: remove that archive first", target, cur.describe(), source)
		}
		// statfs always asks the file system: a stat may be answered from
		// the kernel's attribute cache even when the server is gone.
		var st unix.Statfs_t
		if err := unix.Statfs(real, &st); err == nil {
			tx.Record(change.Unchanged, what)
			return cur.Method, nil
		}
		// A FUSE server that died leaves its mount ("transport endpoint is
		// not connected"): nothing can read it, so it is mounted again.
		tx.Record(change.Changed, what+" (stale "+string(cur.Method)+" mount, mounted again)")
		if tx.DryRun {
			return cur.Method, nil
		}
		if err := unix.Unmount(real, unix.MNT_DETACH); err != nil {
			return "", fmt.Errorf("unmounting the stale mount %s: %w", target, err)
		}
		if o.Method == "" || o.Method == Auto {
			o.Method = cur.Method
		}
		return mountFirst(tx, source, real, target, fi, o, true)
	}
	if err := tx.MkdirAll(target); err != nil {
		return "", err
	}
	return mountFirst(tx, source, real, target, fi, o, false)
}

// mountFirst mounts by the first method that works; recorded already
// when it replaces a stale mount.
func mountFirst(tx *change.Tx, source, real, target string, fi os.FileInfo, o Options, recorded bool) (Method, error) {
	what := "mount " + target
	var ms []Mounter
	if fi.IsDir() {
		ms = []Mounter{bindMounter{}}
	} else {
		var err error
		if ms, err = o.Mounters(); err != nil {
			return "", err
		}
	}
	if tx.DryRun {
		tx.Record(change.Added, what)
		if len(ms) == 1 {
			return ms[0].Method(), nil
		}
		return Auto, nil
	}
	if err := checkEmpty(real, target); err != nil {
		return "", err
	}
	var errs []error
	for _, m := range ms {
		err := m.Mount(source, real)
		if err == nil {
			if !recorded {
				tx.Record(change.Added, what+" ("+string(m.Method())+", from "+source+")")
			}
			tx.OnRollback(func() error { return Unmount(real) })
			return m.Method(), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.Method(), err))
	}
	return "", fmt.Errorf("mounting %s at %s: no method worked:\n%w", source, target, errors.Join(errs...))
}

// Remove unmounts source from target when it is mounted there. A mount of
// something else is left alone and is an error. Rollback mounts it again
// by the same method.
func Remove(tx *change.Tx, source, target string, o Options) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	real := tx.Path(target)
	cur, err := Current(real)
	if err != nil {
		return err
	}
	if cur == nil {
		return removeMountPoint(tx, real, target)
	}
	if !cur.SameSource(source, real) {
		return fmt.Errorf("%s is mounted from %s, not from %s: not unmounting it", target, cur.describe(), source)
	}
	tx.Record(change.Removed, "mount "+target)
	if tx.DryRun {
		return nil
	}
	if err := Unmount(real); err != nil {
		return err
	}
	o.Method = cur.Method
	tx.OnRollback(func() error {
		var m Mounter = bindMounter{}
		if cur.Method != Dir {
			ms, err := o.Mounters()
			if err != nil {
				return err
			}
			m = ms[0]
		}
		return m.Mount(source, real)
	})
	return removeMountPoint(tx, real, target)
}

// removeMountPoint removes the directory Ensure made for the mount, when
// it is empty and nothing is mounted there: remove undoes all of add.
func removeMountPoint(tx *change.Tx, real, target string) error {
	if names, err := os.ReadDir(real); err != nil || len(names) > 0 {
		return nil // gone already, or holding something that is not ours
	}
	tx.Record(change.Removed, "directory "+target)
	if tx.DryRun {
		return nil
	}
	if err := os.Remove(real); err != nil {
		return fmt.Errorf("removing the mount point %s: %w", target, err)
	}
	tx.OnRollback(func() error { return os.Mkdir(real, 0o755) })
	return nil
}

// Unmount unmounts the real path target, lazily when it is busy (a
// reader still has a file open: it keeps reading, new lookups fail).
func Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	return nil
}

func checkEmpty(real, target string) error {
	f, err := os.Open(real)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("mount point %s is not empty: mounting there would hide %s", target, names[0])
	}
	return nil
}

// bindMounter mounts a directory archive where ISOs are mounted, so
// everything that reads an archive finds it at one path.
type bindMounter struct{}

func (bindMounter) Method() Method { return Dir }

func (bindMounter) Mount(source, target string) error {
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	// A bind mount takes its flags from a remount (mount(8) does the same).
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("making the bind mount read-only: %w", err)
	}
	return nil
}
