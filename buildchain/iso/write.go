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
	"syscall"
)

// openFile is a seam for tests that need a source file to fail on open,
// which running as root otherwise makes impossible.
var openFile = os.Open

// collectExtents decides which files share data: hard links share their
// inode, and files with identical content share one extent. Only files
// whose size collides with another file's size are hashed, so a file with
// a unique size is read exactly once, when it is written.
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

	// Candidates share their size with another file. Big candidates are
	// first told apart by a digest of their head, so that only files that
	// really look alike are read in full before being written.
	bySize := map[int64][]*inode{}
	for _, ino := range order {
		if ino.size > 0 {
			bySize[ino.size] = append(bySize[ino.size], ino)
		}
	}
	var heads []*inode
	for _, ino := range order {
		if len(bySize[ino.size]) > 1 && ino.size > headSize {
			heads = append(heads, ino)
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
	byHead := map[key]int{}
	headOf := map[*inode][32]byte{}
	for i, ino := range heads {
		byHead[key{ino.size, headSums[i]}]++
		headOf[ino] = headSums[i]
	}
	var toHash []*inode
	for _, ino := range order {
		if len(bySize[ino.size]) < 2 {
			continue
		}
		if h, ok := headOf[ino]; ok && byHead[key{ino.size, h}] < 2 {
			continue
		}
		toHash = append(toHash, ino)
	}
	sums := make([][32]byte, len(toHash))
	index := map[*inode]int{}
	for i, ino := range toHash {
		index[ino] = i
	}
	if err := hashAll(ctx, toHash, sums, -1); err != nil {
		return err
	}

	bySum := map[[32]byte]*extent{}
	for _, ino := range order {
		if ino.size == 0 {
			continue
		}
		i, hashed := index[ino]
		if hashed {
			if e := bySum[sums[i]]; e != nil {
				ino.data = e
				continue
			}
		}
		e := &extent{src: ino.src, size: ino.size}
		if hashed {
			e.sum = sums[i]
			bySum[e.sum] = e
		}
		ino.data = e
		p.extents = append(p.extents, e)
		p.shared -= e.size
	}
	return nil
}

// headSize is how much of a big file is hashed to tell it apart from
// other files of the same size.
const headSize = 64 << 10

// hashAll hashes the first limit bytes of each file (all of it if limit is
// negative), in parallel.
func hashAll(ctx context.Context, inos []*inode, sums [][32]byte, limit int64) error {
	workers := min(runtime.GOMAXPROCS(0), 4)
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(inos) || ctx.Err() != nil {
					return
				}
				sum, err := hashFile(inos[i], buf, limit)
				if err != nil {
					errs[w] = err
					next.Store(int64(len(inos)))
					return
				}
				sums[i] = sum
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
	var r io.Reader = f
	if limit >= 0 && limit < ino.size {
		want = limit
		r = io.LimitReader(f, limit)
	}
	n, err := io.CopyBuffer(h, r, buf)
	if err != nil {
		return sum, fmt.Errorf("iso: reading %s: %w", ino.src, err)
	}
	if n != want {
		return sum, fmt.Errorf("iso: %s changed size while the image was built (%d bytes, then %d)", ino.src, ino.size, n)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

const chunkSize = 1 << 20

type chunk struct {
	b    []byte
	refs atomic.Int32
}

// stream moves bytes from the producer (which reads the sources) to the
// consumers (the output and the digests), each in its own goroutine, so
// reading, writing and hashing overlap. A fixed pool of chunks bounds the
// memory.
type stream struct {
	ctx    context.Context
	free   chan *chunk
	cur    *chunk
	outs   []chan *chunk
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	failed atomic.Bool
	off    int64
}

func newStream(ctx context.Context, consumers ...func([]byte) error) *stream {
	s := &stream{ctx: ctx, free: make(chan *chunk, 8)}
	for i := 0; i < cap(s.free); i++ {
		s.free <- &chunk{b: make([]byte, 0, chunkSize)}
	}
	for _, consume := range consumers {
		ch := make(chan *chunk, cap(s.free))
		s.outs = append(s.outs, ch)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for c := range ch {
				if !s.failed.Load() {
					if err := consume(c.b); err != nil {
						s.fail(err)
					}
				}
				if c.refs.Add(-1) == 0 {
					c.b = c.b[:0]
					s.free <- c
				}
			}
		}()
	}
	return s
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
	c.refs.Store(int32(len(s.outs)))
	for _, ch := range s.outs {
		ch <- c
	}
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
// directly. Holes of sparse files are not read: they are produced as
// zeros, which the file sink turns back into holes.
func (s *stream) copyFile(src string, size int64) error {
	f, err := openFile(src)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer f.Close()
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
			if _, err := f.Seek(pos, io.SeekStart); err != nil {
				return fmt.Errorf("iso: reading %s: %w", src, err)
			}
		}
		c, err := s.chunk()
		if err != nil {
			return err
		}
		want := min(dataEnd-pos, int64(cap(c.b)-len(c.b)))
		k, err := f.Read(c.b[len(c.b) : len(c.b)+int(want)])
		c.b = c.b[:len(c.b)+k]
		pos += int64(k)
		s.off += int64(k)
		if len(c.b) == cap(c.b) {
			s.flush()
		}
		if err == io.EOF && pos < size {
			return fmt.Errorf("iso: %s shrank while the image was written (%d bytes expected, %d read)", src, size, pos)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("iso: reading %s: %w", src, err)
		}
	}
	if _, err := f.Seek(size, io.SeekStart); err == nil {
		var probe [1]byte
		if k, _ := f.Read(probe[:]); k > 0 {
			return fmt.Errorf("iso: %s grew while the image was written (more than %d bytes)", src, size)
		}
	}
	return nil
}

// sparseMin is the size from which files are checked for holes; below it
// the two extra system calls cost more than they can save.
const sparseMin = 4 << 20

// nextData returns the next run of data at or after pos, clamped to size;
// where the file system cannot tell, everything is data.
func nextData(f *os.File, pos, size int64) (start, end int64) {
	const seekData, seekHole = 3, 4
	start, err := f.Seek(pos, seekData)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) { // only a hole is left
			return size, size
		}
		return pos, size
	}
	end, err = f.Seek(start, seekHole)
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

// fileSink writes chunks at increasing offsets and skips all-zero chunks,
// leaving holes: the multi-gigabyte zero runs of sparse inputs then cost
// neither writes nor disk.
type fileSink struct {
	f   *os.File
	off int64
}

var zeroChunk = make([]byte, chunkSize)

func (w *fileSink) consume(b []byte) error {
	if !bytes.Equal(b, zeroChunk[:len(b)]) {
		if _, err := w.f.WriteAt(b, w.off); err != nil {
			return fmt.Errorf("iso: writing %s: %w", w.f.Name(), err)
		}
	}
	w.off += int64(len(b))
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

func (m *isoMD5) consume(b []byte) error {
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
	return nil
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
	res, err := b.write(ctx, func(p []byte) error {
		_, err := bw.Write(p)
		return err
	}, wa, bw.Flush)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (b *Builder) write(ctx context.Context, sink func([]byte) error, wa io.WriterAt, flush func() error) (*Result, error) {
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

	consumers := []func([]byte) error{sink}
	var sha hash.Hash
	var md *isoMD5
	if b.opts.ImplantMD5 {
		md = newISOMD5(p.total)
		consumers = append(consumers, md.consume)
	} else if !b.opts.NoChecksumFile {
		sha = sha256.New()
		consumers = append(consumers, func(b []byte) error { sha.Write(b); return nil })
	}
	s := newStream(ctx, consumers...)
	if err := p.emit(s); err != nil {
		s.close()
		return nil, err
	}
	if err := s.close(); err != nil {
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
	res, err = b.write(ctx, fs.consume, tmp, func() error {
		// Holes at the end are not written; give the file its size.
		return tmp.Truncate(fs.off)
	})
	if err != nil {
		return nil, err
	}
	if res.SHA256 == "" && !b.opts.NoChecksumFile {
		if res.SHA256, err = fileSHA256(tmp); err != nil {
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

func fileSHA256(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", fmt.Errorf("iso: hashing %s: %w", f.Name(), err)
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
