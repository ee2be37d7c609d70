// Package fsutil holds the file-system primitives every build step relies on:
// atomic writes, atomic directory publication and the build-root lock.
//
// The rule they enforce: a path that a later run trusts is only ever created
// by a rename of something complete. Temporary names start with ".tmp-" so a
// crash leaves only litter that the next run or `clean` removes.
//
// Modes: what is published is published to be read by others (the nginx
// workers serving the ISO's registry, the kernel and isoinfo reading its Rock
// Ridge modes, the user installing it), so modes are set explicitly rather
// than left to os.MkdirTemp (0700) or the umask. Directories fsutil creates
// or publishes are 0755. PublishDir gives every file of the published tree
// 0644, or 0755 when its owner may execute it; write bits for group and
// others, and setuid, setgid and sticky bits, are dropped. WriteWith keeps the
// perm its caller asks for, set with chmod so the umask cannot narrow it:
// a caller that wants a file private asks for it, and does not publish it
// in a tree.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// TempPrefix starts the name of every temporary file or directory.
const TempPrefix = ".tmp-"

// WriteFile writes data to path atomically: a temp file in the same
// directory, fsync, then rename.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteWith streams fill's output into path atomically. If fill fails,
// nothing appears at path and the temp file is removed.
func WriteWith(path string, perm os.FileMode, fill func(io.Writer) error) error {
	return writeWith(path, perm, fill, os.Rename)
}

// CreateWith is WriteWith for content-addressed stores: an existing path is
// never replaced (the complete temp file is hard-linked into place), so a
// file that others already link to keeps its inode. When path already
// exists, the new content is dropped and no error is returned.
func CreateWith(path string, perm os.FileMode, fill func(io.Writer) error) error {
	return writeWith(path, perm, fill, func(tmp, path string) error {
		err := os.Link(tmp, path)
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	})
}

func writeWith(path string, perm os.FileMode, fill func(io.Writer) error, publish func(tmp, path string) error) (err error) {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// CreateTemp made it 0600; chmod is not narrowed by the umask.
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return publish(tmp, path)
}

// DirMode is the mode of every directory fsutil creates or publishes.
const DirMode os.FileMode = 0o755

// MkdirAll is os.MkdirAll with the directories it creates set to DirMode
// whatever the umask. Existing directories keep their mode.
func MkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, DirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made by someone else meanwhile
		}
		return err
	}
	return os.Chmod(dir, DirMode)
}

// TempDir makes a temporary directory beside final, on the same file system
// so that PublishDir's rename is atomic. It is DirMode from the start (not
// os.MkdirTemp's 0700), for publishers that rename it themselves.
func TempDir(final string) (string, error) {
	parent := filepath.Dir(final)
	if err := MkdirAll(parent); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, TempPrefix+filepath.Base(final)+"-*")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, DirMode); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// PublishMode is the mode a published entry of mode m gets (see the package
// comment): 0755 for directories and files their owner may execute, 0644
// for other files. Symlinks have no mode of their own.
func PublishMode(m fs.FileMode) fs.FileMode {
	switch {
	case m.IsDir():
		return DirMode
	case m&0o100 != 0:
		return 0o755
	}
	return 0o644
}

// SetPublishModes gives every directory and regular file under root the
// PublishMode of its kind. Files are only chmod-ed when their mode differs:
// a hard link shared with the blob cache already has the right mode.
func SetPublishModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Mode() & (ModePerm|setuid|setgid|sticky): what chmod sets.
		cur := info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if want := PublishMode(info.Mode()); cur != want {
			if err := os.Chmod(p, want); err != nil {
				return err
			}
		}
		return nil
	})
}

// PublishDir replaces final with the complete directory tmp, after giving
// the tree the modes of SetPublishModes. An existing final is moved aside
// first and removed after the swap, so a reader sees either the old tree or
// the new one, never a mix.
func PublishDir(tmp, final string) error {
	if err := SetPublishModes(tmp); err != nil {
		return err
	}
	var old string
	if _, err := os.Lstat(final); err == nil {
		old = filepath.Join(filepath.Dir(final), TempPrefix+"old-"+filepath.Base(final)+"-"+strconv.Itoa(os.Getpid()))
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if old != "" {
			os.Rename(old, final)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// RemoveTemps deletes the temporary litter of interrupted runs under dir.
func RemoveTemps(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if strings.HasPrefix(d.Name(), TempPrefix) {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
}

// LinkOrCopy hard-links src to dst, copying when a link is impossible
// (another file system). dst is replaced atomically.
func LinkOrCopy(src, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), TempPrefix+filepath.Base(dst)+"-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		st, err := in.Stat()
		if err != nil {
			return err
		}
		return WriteWith(dst, st.Mode().Perm(), func(w io.Writer) error {
			_, err := io.Copy(w, in)
			return err
		})
	}
	return os.Rename(tmp, dst)
}

// Lock is an exclusive, non-blocking lock on a build root.
type Lock struct{ f *os.File }

// LockDir takes the lock file dir/.lock. A second build on the same root
// fails at once instead of waiting or corrupting the first one's outputs.
func LockDir(dir string) (*Lock, error) {
	if err := MkdirAll(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another build is running on %s (lock %s held by pid %s); wait for it or use another BUILD_ROOT",
				dir, path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}

// TypeName names the kind of a file that is neither regular, a directory
// nor a symlink, for errors that refuse it.
func TypeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "irregular file (" + m.String() + ")"
}
