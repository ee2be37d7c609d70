package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// LockPath is the node path of the lock that keeps two runs from
// interleaving their changes.
const LockPath = "/run/metalk8s/installer.lock"

// ErrLocked is returned by a run with NoWait when another holds the lock.
var ErrLocked = errors.New("locked")

// Lock is the installer's lock: an exclusive flock on a file holding the
// holder's pid, so the one that waits, or fails with --no-wait, can name
// it. fsutil has two locks, neither of which fits: LockDir never waits
// and speaks of builds, LockFile always waits and records no holder. Like
// LockFile, Unlock removes the file (so a dry run leaves no trace), and a
// waiter that then gets the flock of the removed file starts again on the
// file at the path.
type Lock struct {
	f    *os.File
	path string
	dirs []string // the levels Acquire created, deepest first
}

// AcquireLock takes the lock at path. When another process holds it, it
// fails at once with ErrLocked if noWait, and otherwise says on wait
// whom it waits for and waits until the lock is free or ctx ends.
func AcquireLock(ctx context.Context, path string, noWait bool, wait io.Writer) (*Lock, error) {
	var created []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		created = append(created, d)
	}
	said := false
	for {
		// Inside the loop: the holder that leaves removes the directory
		// it created when it is empty, which it may be between two turns.
		if err := fsutil.MkdirAll(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := readHolder(f)
			if noWait {
				f.Close()
				return nil, fmt.Errorf("another metalk8s-installer run (pid %s) holds %s: %w; run again when it is done, or without --no-wait to wait for it",
					holder, path, ErrLocked)
			}
			if !said {
				fmt.Fprintf(wait, "waiting for the lock %s, held by pid %s\n", path, holder)
				said = true
			}
			var abandoned bool
			if abandoned, err = flockCtx(ctx, f); abandoned {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		var held, named syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		err = syscall.Stat(path, &named)
		if err == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			if err := f.Truncate(0); err == nil {
				_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			return &Lock{f: f, path: path, dirs: created}, nil
		}
		// The holder removed the file on its way out: lock the new one.
		f.Close()
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
}

func readHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid := strings.TrimSpace(string(buf[:n])); pid != "" {
		return pid
	}
	return "unknown"
}

// flockCtx waits for the flock in a goroutine, so that a signal ending
// ctx ends the wait. The file then belongs to that goroutine, which closes
// it once its flock returns (closing it under a blocked flock would race,
// and its descriptor number could be reused): the caller must not.
func flockCtx(ctx context.Context, f *os.File) (abandoned bool, err error) {
	done := make(chan error, 1)
	go func() { done <- flock(f, syscall.LOCK_EX) }()
	select {
	case err := <-done:
		return false, err
	case <-ctx.Done():
		go func() {
			<-done
			f.Close()
		}()
		return true, ctx.Err()
	}
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// Unlock removes the lock file, and the directories AcquireLock created
// when nothing else is in them, then releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	for _, d := range l.dirs {
		if os.Remove(d) != nil { // not empty: another run's lock
			break
		}
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
