// Package fsutil holds the file-system primitives every build step relies on:
// atomic writes, atomic directory publication and the build-root lock.
//
// The rule they enforce: a path that a later run trusts is only ever created
// by a rename of something complete. Temporary names start with ".tmp-" so a
// crash leaves only litter that the next run or `clean` removes.
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
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

// TempDir makes a temporary directory beside final, on the same file system
// so that PublishDir's rename is atomic.
func TempDir(final string) (string, error) {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, TempPrefix+filepath.Base(final)+"-*")
}

// PublishDir replaces final with the complete directory tmp. An existing
// final is moved aside first and removed after the swap, so a reader sees
// either the old tree or the new one, never a mix.
func PublishDir(tmp, final string) error {
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
