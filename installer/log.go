package installer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// DefaultLogPath is the node path of the log, as the MetalK8s scripts
// keep one.
const DefaultLogPath = "/var/log/metalk8s/installer.log"

// Logger appends timestamped lines, with the pid, to the log file and,
// with --verbose, to stderr. It is an io.Writer, so that the pieces log
// through it: each line written gets its own prefix.
type Logger struct {
	mu      sync.Mutex
	file    *os.File  // nil: no log file
	stderr  io.Writer // nil unless verbose
	pending []byte
	now     func() time.Time
}

// OpenLog opens path for appending, creating it 0644 (and its missing
// parent directories 0755) whatever the umask, for it is read by whoever
// looks into a failed install. path "" logs nowhere but to stderr.
func OpenLog(path string, stderr io.Writer) (*Logger, error) {
	l := &Logger{stderr: stderr, now: time.Now}
	if path == "" {
		return l, nil
	}
	if err := fsutil.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("log file %s: not a regular file", path)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := f.Chmod(0o644); err != nil {
			f.Close()
			return nil, fmt.Errorf("log file %s: %w", path, err)
		}
	}
	l.file = f
	return l, nil
}

// Write logs p, one prefixed line per line; a last line without its
// newline waits for the rest.
func (l *Logger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, p...)
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			break
		}
		l.line(l.pending[:i])
		l.pending = l.pending[i+1:]
	}
	return len(p), nil
}

// Printf logs one line (or several).
func (l *Logger) Printf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if len(s) == 0 || s[len(s)-1] != '\n' {
		s += "\n"
	}
	l.Write([]byte(s))
}

func (l *Logger) line(b []byte) {
	prefix := l.now().UTC().Format(time.RFC3339) + " [" + strconv.Itoa(os.Getpid()) + "] "
	out := append([]byte(prefix), b...)
	out = append(out, '\n')
	// A full disk must not fail the install: the log is a record of it.
	if l.file != nil {
		l.file.Write(out)
	}
	if l.stderr != nil {
		l.stderr.Write(out)
	}
}

// Close flushes a last unterminated line and closes the file.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		l.line(l.pending)
		l.pending = nil
	}
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}
