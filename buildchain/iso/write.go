package iso

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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

// collectExtents decides which files share data: hard links share their
// inode, and files with identical content share one extent. Only files
// whose size collides with another file's size are examined, so a file
// with a unique size is read exactly once, when it is written.
func (p *plan) collectExtents(ctx context.Context) error {
	var order []*inode
	seen := map[*inode]bool{}
	var visit func(d *node)
	visit = func(d *node) {
		for _, c := range d.children {
			switch c.kind {
			case kindDir:
				visit(c)
			case kindFile:
				p.files++
				p.shared += c.ino.size
				if !seen[c.ino] {
					seen[c.ino] = true
					order = append(order, c.ino)
				}
			}
		}
	}
	visit(p.b.root)

	// Candidates share their size with another file. Small ones are
	// hashed whole (one read each). Big ones are first told apart by a
	// digest of their head, and only those whose size and head both
	// collide are read in full, side by side, and compared.
	bySize := map[int64][]*inode{}
	for _, ino := range order {
		if ino.size > 0 {
			bySize[ino.size] = append(bySize[ino.size], ino)
		}
	}
	var heads, small []*inode
	for _, ino := range order {
		switch {
		case len(bySize[ino.size]) < 2:
		case ino.size > headSize:
			heads = append(heads, ino)
		default:
			small = append(small, ino)
		}
	}
	headSums := make([][32]byte, len(heads))
	if err := hashAll(ctx, heads, headSums, headSize); err != nil {
		return err
	}
	type key struct {
		size int64
		head [32]byte
	}
	byHead := map[key][]*inode{}
	var keys []key // in walk order, for a deterministic grouping
	for i, ino := range heads {
		k := key{ino.size, headSums[i]}
		if byHead[k] == nil {
			keys = append(keys, k)
		}
		byHead[k] = append(byHead[k], ino)
	}
	var groups [][]*inode
	for _, k := range keys {
		if len(byHead[k]) > 1 {
			groups = append(groups, byHead[k])
		}
	}
	same, err := compareAll(ctx, groups)
	if err != nil {
		return err
	}
	sums := make([][32]byte, len(small))
	if err := hashAll(ctx, small, sums, -1); err != nil {
		return err
	}
	smallSum := make(map[*inode][32]byte, len(small))
	for i, ino := range small {
		smallSum[ino] = sums[i]
	}

	bySum := map[[32]byte]*extent{}
	for _, ino := range order {
		if ino.size == 0 {
			continue
		}
		// The representative of a class comes first in walk order, so its
		// extent exists by the time the others point at it.
		if rep := same[ino]; rep != nil && rep != ino {
			ino.data = rep.data
			continue
		}
		sum, hashed := smallSum[ino]
		if hashed {
			if e := bySum[sum]; e != nil {
				ino.data = e
				continue
			}
		}
		e := &extent{src: ino.src, size: ino.size}
		if hashed {
			bySum[sum] = e
		}
		ino.data = e
		p.extents = append(p.extents, e)
		p.shared -= e.size
	}
	return nil
}

// headSize is how much of a big file is hashed to tell it apart from
// other files of the same size; files up to this size are hashed whole.
const headSize = 64 << 10

// workers is how many files are read at once while looking for shared
// content: enough to use every CPU on a warm page cache, few enough not
// to thrash a disk.
func workers() int { return min(runtime.GOMAXPROCS(0), 4) }

// hashAll hashes the first limit bytes of each file (all of it if limit is
// negative), in parallel.
func hashAll(ctx context.Context, inos []*inode, sums [][32]byte, limit int64) error {
	buf := make([][]byte, workers())
	return parallel(ctx, len(inos), func(w, i int) error {
		if buf[w] == nil {
			buf[w] = make([]byte, 256<<10)
		}
		sum, err := hashFile(inos[i], buf[w], limit)
		sums[i] = sum
		return err
	})
}

// parallel runs fn(worker, i) for i in [0, n) on workers() goroutines and
// returns the first error, after which no new item is started.
func parallel(ctx context.Context, n int, fn func(w, i int) error) error {
	nw := workers()
	var next atomic.Int64
	errs := make([]error, nw)
	var wg sync.WaitGroup
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(w, i); err != nil {
					errs[w] = err
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func hashFile(ino *inode, buf []byte, limit int64) (sum [32]byte, err error) {
	f, err := openFile(ino.src)
	if err != nil {
		return sum, fmt.Errorf("iso: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	want := ino.size
	if limit >= 0 && limit < ino.size {
		want = limit
	}
	var n int64
	for n < want {
		k, err := f.readAt(buf[:min(int64(len(buf)), want-n)], n)
		h.Write(buf[:k])
		n += int64(k)
		if err != nil {
			return sum, err
		}
		if k == 0 {
			break
		}
	}
	if n != want {
		return sum, fmt.Errorf("iso: %s changed size while the image was built (%d bytes, then %d)", ino.src, ino.size, n)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

const (
	// compareChunk is how much of each file of a group is read per round.
	compareChunk = 256 << 10
	// maxSideBySide bounds the files compared side by side (and so the
	// buffers, compareChunk each); bigger groups are hashed instead.
	maxSideBySide = 8
)

// compareAll finds, in each group of files of the same size, the files
// with identical content, and maps each of them to the first of its class
// (files alone in their class are left out). Comparing bytes costs a
// fraction of hashing them: on the benchmark's ten pairs of 68 MiB layers
// SHA-256 took most of the time spent before writing.
func compareAll(ctx context.Context, groups [][]*inode) (map[*inode]*inode, error) {
	classes := make([][][]*inode, len(groups))
	bufs := make([][][]byte, workers())
	err := parallel(ctx, len(groups), func(w, i int) error {
		g := groups[i]
		if len(g) > maxSideBySide {
			var err error
			classes[i], err = hashClasses(ctx, g)
			return err
		}
		if bufs[w] == nil {
			bufs[w] = make([][]byte, maxSideBySide)
			for k := range bufs[w] {
				bufs[w][k] = make([]byte, compareChunk)
			}
		}
		var err error
		classes[i], err = compareGroup(ctx, g, bufs[w])
		return err
	})
	if err != nil {
		return nil, err
	}
	same := map[*inode]*inode{}
	for _, cs := range classes {
		for _, c := range cs {
			for _, ino := range c {
				same[ino] = c[0]
			}
		}
	}
	return same, nil
}

// compareGroup reads the files of g (all of the same size) side by side
// and splits them into classes of identical content, dropping files as
// soon as they are alone in their class. Classes keep walk order.
func compareGroup(ctx context.Context, g []*inode, bufs [][]byte) ([][]*inode, error) {
	files := make([]*source, len(g))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, ino := range g {
		f, err := openFile(ino.src)
		if err != nil {
			return nil, fmt.Errorf("iso: %w", err)
		}
		files[i] = f
	}
	classes := [][]int{make([]int, len(g))}
	for i := range g {
		classes[0][i] = i
	}
	size := g[0].size
	for pos := int64(0); pos < size && len(classes) > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := int(min(compareChunk, size-pos))
		var split [][]int
		for _, c := range classes {
			var subs [][]int
			for _, i := range c {
				got, err := files[i].readAt(bufs[i][:n], pos)
				if err != nil {
					return nil, err
				}
				if got < n {
					return nil, fmt.Errorf("iso: %s changed size while the image was built (%d bytes, then %d)", g[i].src, size, pos+int64(got))
				}
				k := 0
				for k < len(subs) && !bytes.Equal(bufs[subs[k][0]][:n], bufs[i][:n]) {
					k++
				}
				if k == len(subs) {
					subs = append(subs, nil)
				}
				subs[k] = append(subs[k], i)
			}
			for _, s := range subs {
				if len(s) > 1 {
					split = append(split, s)
				}
			}
		}
		classes = split
		pos += int64(n)
	}
	out := make([][]*inode, len(classes))
	for k, c := range classes {
		for _, i := range c {
			out[k] = append(out[k], g[i])
		}
	}
	return out, nil
}

// hashClasses splits a group too big to compare side by side by digest.
func hashClasses(ctx context.Context, g []*inode) ([][]*inode, error) {
	buf := make([]byte, 256<<10)
	bySum := map[[32]byte]int{}
	var classes [][]*inode
	for _, ino := range g {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sum, err := hashFile(ino, buf, -1)
		if err != nil {
			return nil, err
		}
		k, ok := bySum[sum]
		if !ok {
			k = len(classes)
			bySum[sum] = k
			classes = append(classes, nil)
		}
		classes[k] = append(classes[k], ino)
	}
	var out [][]*inode
	for _, c := range classes {
		if len(c) > 1 {
			out = append(out, c)
		}
	}
	return out, nil
}

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

// isoMD5 computes what implantisomd5 embeds: the MD5 of the image, less
// its last 15 sectors, with the application-use area blank (which it is
// while we write), and "fragment sums" taken at the 32 KiB read
// boundaries implantisomd5 uses.
type isoMD5 struct {
	h        hash.Hash
	off      int64
	limit    int64
	fragSize int64
	prev     int64
	frags    strings.Builder
}

const (
	md5SkipSectors   = 15
	md5FragmentCount = 20
	md5FragmentChars = 60 / md5FragmentCount
	md5ReadSize      = 16 * sectorSize
	appDataOffset    = 16*sectorSize + 883
)

func newISOMD5(totalSectors uint32) *isoMD5 {
	limit := (int64(totalSectors) - md5SkipSectors) * sectorSize
	return &isoMD5{h: md5.New(), limit: limit, fragSize: limit / (md5FragmentCount + 1)}
}

func (m *isoMD5) consume(b []byte) {
	for len(b) > 0 && m.off < m.limit {
		n := int64(len(b))
		n = min(n, md5ReadSize-m.off%md5ReadSize, m.limit-m.off)
		m.h.Write(b[:n])
		m.off += n
		b = b[n:]
		if m.off%md5ReadSize == 0 || m.off == m.limit {
			start := (m.off - 1) / md5ReadSize * md5ReadSize
			if frag := start / max(m.fragSize, 1); frag != m.prev {
				// isomd5sum prints each of the first digest bytes with
				// "%01x" into a 2-byte buffer: one hex digit per byte, the
				// high one unless the byte is below 0x10.
				sum := m.h.Sum(nil)
				for _, c := range sum[:md5FragmentChars] {
					m.frags.WriteByte(strconv.FormatUint(uint64(c), 16)[0])
				}
				m.prev = frag
			}
		}
	}
}

// appData is the application-use area implantisomd5 writes.
func (m *isoMD5) appData() (string, []byte) {
	sum := hex.EncodeToString(m.h.Sum(nil))
	frags := m.frags.String()
	if len(frags) > md5FragmentCount*md5FragmentChars {
		frags = frags[:md5FragmentCount*md5FragmentChars]
	}
	s := fmt.Sprintf("ISO MD5SUM = %s;SKIPSECTORS = %d;RHLISOSTATUS=0;FRAGMENT SUMS = %s;FRAGMENT COUNT = %d;THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!",
		sum, md5SkipSectors, frags, md5FragmentCount)
	b := bytes.Repeat([]byte{' '}, 512)
	copy(b, s)
	return sum, b
}

// Write streams the image to w. With ImplantMD5, w must also be an
// io.WriterAt positioned at the image's start, to patch the checksum in.
// Result.SHA256 is empty when ImplantMD5 is set, since the digest changes
// after the patch; WriteFile computes it.
func (b *Builder) Write(ctx context.Context, w io.Writer) (*Result, error) {
	var wa io.WriterAt
	if b.opts.ImplantMD5 {
		var ok bool
		if wa, ok = w.(io.WriterAt); !ok {
			return nil, errors.New("iso: ImplantMD5 needs an output that is an io.WriterAt")
		}
	}
	bw := bufio.NewWriterSize(w, chunkSize)
	res, err := b.write(ctx, func(c *chunk) error {
		_, err := bw.Write(c.b)
		return err
	}, wa, nil, bw.Flush)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// write plans and emits the image into sink. out, when not nil, is the
// output file the sink writes to: file data is then copied into it in the
// kernel, and the digests read it back behind the writer.
func (b *Builder) write(ctx context.Context, sink func(*chunk) error, wa io.WriterAt, out *os.File, flush func() error) (*Result, error) {
	if b.frozen {
		return nil, errors.New("iso: an image can be written only once")
	}
	p, err := newPlan(b)
	if err != nil {
		return nil, err
	}
	if err := p.collectExtents(ctx); err != nil {
		return nil, err
	}
	if err := p.assign(); err != nil {
		return nil, err
	}

	// The digests are of the image's bytes, never of the sources apart
	// (which could change between the copy and the digest). Into a file,
	// they read the file back (see tailer); into a plain writer, they get
	// the very chunks that are written, in their own goroutines.
	var digests []func([]byte)
	var sha hash.Hash
	var md *isoMD5
	if b.opts.ImplantMD5 {
		md = newISOMD5(p.total)
		digests = append(digests, md.consume)
	} else if !b.opts.NoChecksumFile {
		sha = sha256.New()
		digests = append(digests, func(b []byte) { sha.Write(b) })
	}
	var s *stream
	if out != nil {
		s = newStream(ctx, sink)
		s.direct = out
		if len(digests) > 0 {
			s.tail = startTailer(ctx, out, digests)
		}
	} else {
		s = newStream(ctx, sink, digests...)
	}
	err = p.emit(s)
	if cerr := s.close(); err == nil {
		err = cerr
	}
	if s.tail != nil {
		if err != nil {
			s.tail.abort()
		} else {
			err = s.tail.finish(s.off)
		}
	}
	if err != nil {
		return nil, err
	}
	if flush != nil {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if s.off != int64(p.total)*sectorSize {
		return nil, fmt.Errorf("iso: internal error: wrote %d bytes, planned %d", s.off, int64(p.total)*sectorSize)
	}
	res := &Result{Size: s.off, Files: p.files, Extents: len(p.extents), SharedBytes: p.shared}
	if md != nil {
		sum, app := md.appData()
		if _, err := wa.WriteAt(app, appDataOffset); err != nil {
			return nil, fmt.Errorf("iso: implanting the MD5: %w", err)
		}
		res.MD5 = sum
	} else if sha != nil {
		res.SHA256 = hex.EncodeToString(sha.Sum(nil))
	}
	return res, nil
}

// emit produces the image in order; see plan for the layout.
func (p *plan) emit(s *stream) error {
	if err := s.zeros(16 * sectorSize); err != nil {
		return err
	}
	s.Write(p.volumeDescriptor(false))
	if p.joliet() {
		s.Write(p.volumeDescriptor(true))
	}
	s.Write(terminator())
	s.Write(pathTable(p.dirs, false, false, p.ptSize))
	s.Write(pathTable(p.dirs, false, true, p.ptSize))
	if p.joliet() {
		s.Write(pathTable(p.jdirs, true, false, p.jptSize))
		s.Write(pathTable(p.jdirs, true, true, p.jptSize))
	}
	for _, d := range p.dirs {
		if s.off != int64(d.lba)*sectorSize {
			return fmt.Errorf("iso: internal error: directory %s at byte %d, planned sector %d", d.ino.src, s.off, d.lba)
		}
		ce := make([]byte, int(d.ceSectors)*sectorSize)
		s.Write(p.primaryDir(d, ce))
		if _, err := s.Write(ce); err != nil {
			return err
		}
	}
	for _, d := range p.jdirs {
		if _, err := s.Write(p.jolietDir(d)); err != nil {
			return err
		}
	}
	if s.off != int64(p.dataLBA)*sectorSize {
		return fmt.Errorf("iso: internal error: data at byte %d, planned sector %d", s.off, p.dataLBA)
	}
	for _, e := range p.extents {
		if err := s.copyFile(e.src, e.size); err != nil {
			return err
		}
		if err := s.padSector(); err != nil {
			return err
		}
	}
	return s.zeros(padSectors * sectorSize)
}

// WriteFile writes the image to outPath atomically: into a temporary file
// in the same directory, renamed over outPath only once complete, so that
// an error or a cancelled ctx leaves nothing at outPath. Unless
// NoChecksumFile is set, it then records the image's digest in the
// SHA256SUM file of that directory (in sha256sum format, replacing any
// line for the same name).
func (b *Builder) WriteFile(ctx context.Context, outPath string) (res *Result, err error) {
	dir, base := filepath.Split(outPath)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	fs := &fileSink{f: tmp}
	res, err = b.write(ctx, fs.consume, tmp, tmp, nil)
	if err != nil {
		return nil, err
	}
	// Holes at the end are not written; give the file its size.
	if err = tmp.Truncate(res.Size); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if res.SHA256 == "" && !b.opts.NoChecksumFile {
		if res.SHA256, err = fileSHA256(ctx, tmp, res.Size); err != nil {
			return nil, err
		}
	}
	if err = tmp.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if err = ctx.Err(); err != nil {
		return nil, err
	}
	if err = os.Rename(tmp.Name(), outPath); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if !b.opts.NoChecksumFile {
		if err := UpdateSHA256SUM(filepath.Join(dir, "SHA256SUM"), base, res.SHA256); err != nil {
			return res, err
		}
	}
	return res, nil
}

// fileSHA256 digests the first size bytes of f, reading and hashing on
// two CPUs.
func fileSHA256(ctx context.Context, f *os.File, size int64) (string, error) {
	h := sha256.New()
	t := startTailer(ctx, f, []func([]byte){func(b []byte) { h.Write(b) }})
	if err := t.finish(size); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// UpdateSHA256SUM sets the line for name in a sha256sum-format file,
// replacing any previous line for it and keeping the others, atomically.
func UpdateSHA256SUM(sumFile, name, sum string) error {
	old, err := os.ReadFile(sumFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("iso: %w", err)
	}
	out := updateSums(old, name, sum)
	tmp, err := os.CreateTemp(filepath.Dir(sumFile), ".SHA256SUM.tmp-*")
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("iso: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("iso: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	if err := os.Rename(tmp.Name(), sumFile); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	return nil
}

// updateSums returns the contents of a SHA256SUM file with the line for
// name set to sum. The existing file is outside input (written by hand,
// by sha256sum, or by other tools), so lines that do not parse are kept
// as they are, and names are compared after undoing sha256sum's escapes.
func updateSums(old []byte, name, sum string) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(old), "\n") {
		if line == "" {
			continue
		}
		if _, file, ok := parseSumLine(line); ok && file == name {
			continue
		}
		out.WriteString(line + "\n")
	}
	out.WriteString(sumLine(sum, name))
	return out.Bytes()
}

// sumEscaper and sumUnescaper are GNU sha256sum's (coreutils 9) escapes
// for names holding a backslash, a newline or a carriage return; such a
// line starts with a backslash.
var (
	sumEscaper   = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")
	sumUnescaper = strings.NewReplacer("\\\\", "\\", "\\n", "\n", "\\r", "\r")
)

// sumLine formats one line of sha256sum's text-mode output.
func sumLine(sum, name string) string {
	if strings.ContainsAny(name, "\\\n\r") {
		return "\\" + sum + "  " + sumEscaper.Replace(name) + "\n"
	}
	return sum + "  " + name + "\n"
}

// parseSumLine splits a line of sha256sum output ("SUM  NAME", or
// "SUM *NAME" in binary mode, with a leading backslash when NAME is
// escaped) into the digest and the name.
func parseSumLine(line string) (sum, name string, ok bool) {
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	sum, rest, found := strings.Cut(line, " ")
	if !found || sum == "" || rest == "" || rest[0] != ' ' && rest[0] != '*' {
		return "", "", false
	}
	name = rest[1:]
	if escaped {
		name = sumUnescaper.Replace(name)
	}
	return sum, name, true
}
