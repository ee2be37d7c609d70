package iso

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openFile is a seam for tests that need a source file to fail on open,
// which running as root otherwise makes impossible.
var openFile = openSource

// source is an open input file, read with pread at explicit offsets. Not
// an *os.File: os.Open tries to register every file with the network
// poller, which costs four fcntl calls and an epoll_ctl that fail for
// regular files, and offsets kept by the kernel would need lseek calls.
// With 20,000 small files opened once or twice, those were a tenth of the
// run.
type source struct {
	fd   int
	name string
}

func openSource(name string) (*source, error) {
	for {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			return &source{fd: fd, name: name}, nil
		}
		if err != unix.EINTR {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
}

func (f *source) Close() error { return unix.Close(f.fd) }

// readAt reads into p at off; a short count means the end of the file.
func (f *source) readAt(p []byte, off int64) (int, error) {
	n, err := preadFull(f.fd, p, off)
	if err != nil {
		return n, fmt.Errorf("iso: reading %s: %w", f.name, err)
	}
	return n, nil
}
func errGrew(src string, size int64) error {
	return fmt.Errorf("iso: %s grew while the image was written (more than %d bytes)", src, size)
}

// checkGrew reports a source that has more than size bytes.
func checkGrew(f *source, size int64) error {
	var probe [1]byte
	if k, _ := f.readAt(probe[:], size); k > 0 {
		return errGrew(f.name, size)
	}
	return nil
}

// sparseMin is the size from which files are checked for holes; below it
// the two extra system calls cost more than they can save.
const sparseMin = 4 << 20

// nextData returns the next run of data at or after pos, clamped to size;
// where the file system cannot tell, everything is data.
func nextData(f *source, pos, size int64) (start, end int64) {
	start, err := unix.Seek(f.fd, pos, unix.SEEK_DATA)
	if err != nil {
		if err == unix.ENXIO { // only a hole is left
			return size, size
		}
		return pos, size
	}
	end, err = unix.Seek(f.fd, start, unix.SEEK_HOLE)
	if err != nil || end <= start {
		end = size
	}
	return min(start, size), min(end, size)
}

// preadFull reads into p at off until p is full or the file ends.
func preadFull(fd int, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pread(fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			break
		}
		n += k
	}
	return n, nil
}
