package iso

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

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
		if res.SHA256State, err = sha.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return nil, fmt.Errorf("iso: %w", err)
		}
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
// in the same directory, renamed over outPath only once complete (and
// accepted by Options.Verify, when set), so that an error, a rejected
// image or a cancelled ctx leaves nothing at outPath. Unless
// NoChecksumFile is set, it then records the image's digest in the
// SHA256SUM file of that directory (in sha256sum format, replacing any
// line for the same name).
//
// Writers into one directory are ordered by a lock file beside SHA256SUM
// (see lockSums), held while the temporary file is made and while it is
// renamed and its line recorded: the image at outPath and its line then
// always match, whichever of two writers of outPath comes last. Under the
// lock, temporary files of this output and of SHA256SUM that no live
// writer holds (left by a writer killed with -9) are removed first.
//
// When outPath lies inside a source tree of the image, the entries this
// run and its peers write there (the image, its temporary files,
// SHA256SUM and the lock) are left out of the image: a rebuild into the
// same place must not pack the previous image into the next.
func (b *Builder) WriteFile(ctx context.Context, outPath string) (res *Result, err error) {
	dir, base := filepath.Split(outPath)
	if dir == "" {
		dir = "."
	}
	if err := b.excludeOutput(dir, base); err != nil {
		return nil, err
	}
	tmp, err := b.createTemp(dir, base)
	if err != nil {
		return nil, err
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
		if res.SHA256, res.SHA256State, err = fileSHA256(ctx, tmp, res.Size); err != nil {
			return nil, err
		}
	}
	if err = tmp.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	// Outside the lock: a verification reads the whole image, and other
	// images of the directory need not wait for it. The hold on tmp keeps
	// their clean-up away from it meanwhile.
	if b.opts.Verify != nil {
		if err = b.opts.Verify(ctx, tmp.Name()); err != nil {
			return nil, err
		}
	}
	if err = ctx.Err(); err != nil {
		return nil, err
	}
	l, err := lockSums(dir)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	// Closed under the lock: closing releases the hold that keeps a
	// concurrent writer's clean-up away from the file.
	if err = tmp.Close(); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if err = os.Rename(tmp.Name(), outPath); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if !b.opts.NoChecksumFile {
		if err := updateSHA256SUM(filepath.Join(dir, "SHA256SUM"), base, res.SHA256); err != nil {
			return res, err
		}
	}
	return res, nil
}

// createTemp makes the temporary file of outPath = dir/base, under the
// directory's lock, after removing the stale temporary files there, and
// holds it for as long as it is open.
func (b *Builder) createTemp(dir, base string) (*os.File, error) {
	l, err := lockSums(dir)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if _, err := fsutil.RemoveStale(dir, func(name string) bool { return isTemp(name, base) }); err != nil {
		return nil, fmt.Errorf("iso: removing stale temporary files in %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	if err := fsutil.Hold(tmp); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("iso: %w", err)
	}
	return tmp, nil
}

// tempPattern names the temporary files of an image called base, the
// fsutil way, so that fsutil.RemoveTemps (clean) removes them too.
func tempPattern(base string) string { return fsutil.TempPrefix + base + "-*" }

// isTemp tells whether name is a temporary file WriteFile makes beside an
// image called base: the image's own, SHA256SUM's (fsutil.WriteFile's),
// and the names versions before the lock used ("." + base + ".tmp-*",
// ".SHA256SUM.tmp-*"). Prefixes of other images' temporary files may match
// too ("a.iso" and "a.iso-2"); RemoveStale leaves those alone while their
// writer lives.
func isTemp(name, base string) bool {
	for _, prefix := range []string{
		fsutil.TempPrefix + base + "-",
		fsutil.TempPrefix + "SHA256SUM-",
		"." + base + ".tmp-",
		".SHA256SUM.tmp-",
	} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// fileSHA256 digests the first size bytes of f, reading and hashing on
// two CPUs, and returns the hex digest and the hash's state (see
// Result.SHA256State).
func fileSHA256(ctx context.Context, f *os.File, size int64) (string, []byte, error) {
	h := sha256.New()
	t := startTailer(ctx, f, []func([]byte){func(b []byte) { h.Write(b) }})
	if err := t.finish(size); err != nil {
		return "", nil, err
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return "", nil, fmt.Errorf("iso: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), state, nil
}
