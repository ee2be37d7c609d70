package iso

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// chunkSize is small enough for a chunk to stay in cache between the read
// that fills it and the write that empties it: with 1 MiB chunks, copying
// into the page cache cost twice as much CPU as with 128 KiB ones.
const chunkSize = 128 << 10

// chunk is a piece of the image on its way to the consumers: off is where
// it starts in the image, and zero says that it holds only zeros produced
// by zeros() (padding, holes of sparse files), which the file sink need
// not write. Tracking that costs nothing, where checking the bytes took a
// pass over every chunk.
type chunk struct {
	b    []byte
	off  int64
	zero bool
	refs atomic.Int32
}

// stream moves bytes from the producer (which reads the sources) to the
// output and the digests. The producer writes each chunk out itself, right
// after filling it, while the bytes are still in its CPU's cache (handing
// them to a writer goroutine on the other CPU made the writes, the
// costliest part, a third slower); the digests run in their own
// goroutines, on the other CPU. A fixed pool of small chunks bounds the
// memory and keeps them in cache.
type stream struct {
	ctx    context.Context
	free   chan *chunk
	cur    *chunk
	sink   func(*chunk) error
	outs   []chan *chunk
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	failed atomic.Bool
	off    int64
	// direct, when set, is the output file, and file data is copied into
	// it inside the kernel instead of going through the chunks.
	direct *os.File
	// tail, when set, digests the output file behind the writer and is
	// told how far the image is final.
	tail *tailer
}

// chunkCount chunks of chunkSize bytes: enough for the digests to lag
// behind the writes without stalling them.
const chunkCount = 16

func newStream(ctx context.Context, sink func(*chunk) error, digests ...func([]byte)) *stream {
	s := &stream{ctx: ctx, sink: sink, free: make(chan *chunk, chunkCount)}
	for i := 0; i < cap(s.free); i++ {
		s.free <- &chunk{b: make([]byte, 0, chunkSize)}
	}
	for _, consume := range digests {
		ch := make(chan *chunk, cap(s.free))
		s.outs = append(s.outs, ch)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for c := range ch {
				if !s.failed.Load() {
					consume(c.b)
				}
				s.release(c)
			}
		}()
	}
	return s
}

// release returns a chunk to the pool once its last consumer is done.
func (s *stream) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		c.b = c.b[:0]
		s.free <- c
	}
}

func (s *stream) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.failed.Store(true)
}

func (s *stream) chunk() (*chunk, error) {
	if s.cur != nil {
		return s.cur, nil
	}
	if s.failed.Load() {
		return nil, s.firstErr()
	}
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case c := <-s.free:
		c.off, c.zero = s.off, true
		s.cur = c
		return c, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *stream) firstErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *stream) flush() {
	c := s.cur
	if c == nil || len(c.b) == 0 {
		return
	}
	s.cur = nil
	c.refs.Store(int32(len(s.outs) + 1))
	for _, ch := range s.outs {
		ch <- c
	}
	if !s.failed.Load() {
		if err := s.sink(c); err != nil {
			s.fail(err)
		}
	}
	if s.tail != nil {
		s.tail.publish(c.off + int64(len(c.b)))
	}
	s.release(c)
}

func (s *stream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c, err := s.chunk()
		if err != nil {
			return n, err
		}
		k := copy(c.b[len(c.b):cap(c.b)], p)
		c.b = c.b[:len(c.b)+k]
		c.zero = false
		p, n, s.off = p[k:], n+k, s.off+int64(k)
		if len(c.b) == cap(c.b) {
			s.flush()
		}
	}
	return n, nil
}

func (s *stream) zeros(n int64) error {
	for n > 0 {
		c, err := s.chunk()
		if err != nil {
			return err
		}
		k := int(min(n, int64(cap(c.b)-len(c.b))))
		clear(c.b[len(c.b) : len(c.b)+k])
		c.b = c.b[:len(c.b)+k]
		s.off += int64(k)
		n -= int64(k)
		if len(c.b) == cap(c.b) {
			s.flush()
		}
	}
	return nil
}

func (s *stream) padSector() error {
	if r := s.off % sectorSize; r != 0 {
		return s.zeros(sectorSize - r)
	}
	return nil
}

// copyFile streams exactly size bytes of src, reading into the chunks
// directly, or copying inside the kernel in direct mode. Holes of sparse
// files are not read: they are produced as zeros, which the file sink
// turns back into holes.
func (s *stream) copyFile(src string, size int64) error {
	f, err := openFile(src)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer f.Close()
	if s.direct != nil && size >= directMin {
		done, err := s.copyDirect(f, size)
		if done || err != nil {
			return err
		}
	}
	var pos int64
	dataEnd := size // end of the current run of data, when known
	sparse := size >= sparseMin
	if sparse {
		dataEnd = pos
	}
	for pos < size {
		if sparse && pos >= dataEnd {
			start, end := nextData(f, pos, size)
			if err := s.zeros(start - pos); err != nil {
				return err
			}
			pos, dataEnd = start, end
			if pos >= size {
				break
			}
		}
		c, err := s.chunk()
		if err != nil {
			return err
		}
		want := min(dataEnd-pos, int64(cap(c.b)-len(c.b)))
		// Where the chunk has room, ask for one byte more than the file
		// should have: getting it means the file grew, and a short count
		// at the expected end means end of file, with no probe needed.
		ask := want
		if pos+want == size && len(c.b)+int(want) < cap(c.b) {
			ask++
		}
		k, err := f.readAt(c.b[len(c.b):len(c.b)+int(ask)], pos)
		if err != nil {
			return err
		}
		if int64(k) > want {
			return errGrew(src, size)
		}
		c.b = c.b[:len(c.b)+k]
		c.zero = c.zero && k == 0
		pos += int64(k)
		s.off += int64(k)
		if len(c.b) == cap(c.b) {
			s.flush()
		}
		if int64(k) < want {
			return fmt.Errorf("iso: %s shrank while the image was written (%d bytes expected, %d read)", src, size, pos)
		}
		if ask > want {
			return nil // end of file seen
		}
	}
	return checkGrew(f, size)
}

const (
	// directMin is the size from which a file is copied inside the kernel
	// in direct mode. Smaller files are cheaper to gather into chunks: one
	// pread each, and one pwrite per chunk for many of them.
	directMin = 1 << 20
	// directPiece bounds one in-kernel copy, so that cancellation is
	// noticed within a fraction of a second even in a multi-gigabyte file.
	directPiece = 64 << 20
	// tailPiece bounds one in-kernel copy when the output is digested
	// behind the writer: the digest can start on a piece once it is
	// copied, and has at most one piece left to do when the copy ends.
	tailPiece = 8 << 20
)

// copyDirect copies the runs of data of f into the output at s.off with
// copy_file_range: the bytes go from the source's page cache to the
// output's without a trip through user space (one copy instead of read's
// and write's two). Holes are skipped, so they stay holes in the output.
// Where the kernel or the file systems cannot do it, it turns direct mode
// off and reports done = false with nothing copied.
func (s *stream) copyDirect(f *source, size int64) (done bool, err error) {
	s.flush() // chunks carry their offsets: the sink writes them anywhere
	base := s.off
	copied := false
	for pos := int64(0); pos < size; {
		start, end := pos, size
		if size >= sparseMin {
			start, end = nextData(f, pos, size)
		}
		for start < end {
			if s.failed.Load() {
				return true, s.firstErr()
			}
			if err := s.ctx.Err(); err != nil {
				return true, err
			}
			roff, woff := start, base+start
			piece := int64(directPiece)
			if s.tail != nil {
				piece = tailPiece
			}
			k, err := unix.CopyFileRange(f.fd, &roff, int(s.direct.Fd()), &woff, int(min(end-start, piece)), 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil && !copied && (err == unix.EXDEV || err == unix.ENOSYS || err == unix.EOPNOTSUPP || err == unix.EINVAL) {
				s.direct = nil
				return false, nil
			}
			if err != nil {
				return true, fmt.Errorf("iso: copying %s into %s: %w", f.name, s.direct.Name(), err)
			}
			if k == 0 {
				return true, fmt.Errorf("iso: %s shrank while the image was written (%d bytes expected, %d read)", f.name, size, start)
			}
			copied = true
			start += int64(k)
			if s.tail != nil {
				s.tail.publish(base + start)
			}
		}
		pos = end
	}
	s.off = base + size
	return true, checkGrew(f, size)
}

func (s *stream) close() error {
	s.flush()
	for _, ch := range s.outs {
		close(ch)
	}
	s.wg.Wait()
	return s.firstErr()
}

// fileSink writes chunks at their offsets and skips all-zero chunks,
// leaving holes: the multi-gigabyte zero runs of sparse inputs then cost
// neither writes nor disk.
type fileSink struct {
	f *os.File
}

func (w *fileSink) consume(c *chunk) error {
	if !c.zero {
		if _, err := w.f.WriteAt(c.b, c.off); err != nil {
			return fmt.Errorf("iso: writing %s: %w", w.f.Name(), err)
		}
	}
	return nil
}
