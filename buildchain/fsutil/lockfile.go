package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FileLock is an exclusive flock on a lock file. Unlike Lock, which makes
// a second build fail at once, it waits: it orders short critical sections
// of processes that may legitimately run side by side, such as two image
// writers updating one SHA256SUM.
type FileLock struct {
	f    *os.File
	path string
}

// LockFile takes an exclusive lock on the file path, creating it (mode
// 0644), and waits while another process or another LockFile holds it.
// Unlock removes the file, so that no lock file is left among the outputs:
// the holder unlinks it before releasing the flock, and a waiter that
// then gets the flock of the unlinked inode sees that path no longer
// names it, and starts again on the file at path.
func LockFile(path string) (*FileLock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		var held, named syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		err = syscall.Stat(path, &named)
		if err == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			return &FileLock{f: f, path: path}, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
	}
}

// Unlock removes the lock file and releases the lock.
func (l *FileLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil { // the last descriptor: the flock goes
		err = cerr
	}
	l.f = nil
	return err
}

// Hold marks the open temporary file f as in use for as long as f stays
// open (or its process lives): RemoveStale leaves it alone. It never
// waits, since only f's creator could hold it.
func Hold(f *os.File) error {
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return nil
}

// RemoveStale removes the entries of dir whose names match and that no
// open file holds (see Hold): the litter of writers killed before they
// could clean up, for a flock dies with its process. Call it under the
// lock that orders the writers of dir, which must create and Hold their
// temporary files under that lock too: a file is then never seen between
// its creation and its Hold. It returns the names it removed.
func RemoveStale(dir string, match func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !match(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close() // a live writer's
			continue
		}
		if err == nil {
			err = os.RemoveAll(p)
		}
		f.Close()
		if err != nil {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
