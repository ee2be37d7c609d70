package iso

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// tailer computes the image's digests by reading the output file back,
// a little behind the writer, on the other CPU. The writer can then copy
// file data inside the kernel (copy_file_range) even when a digest is
// wanted, and the digest is of the bytes that are in the file, not of
// what was meant to be written there. The bytes are still copied twice
// (into the output, then back for the digest), as they were when the
// producer read each chunk and wrote it; but the two copies now run on
// different CPUs, and the first one without a trip through user space.
//
// The writer publishes how far the image is final; everything below that
// offset was written, or is a hole the writer skipped (all zeros). A read
// that comes back short below it has met the end of a file whose last
// zeros are not written yet: those bytes are zeros too.
type tailer struct {
	fd      int
	name    string
	digests []func([]byte)
	final   atomic.Int64 // bytes of the image that are final
	closed  atomic.Bool  // final holds the image's size
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	err     error
}

// tailBuf is small enough for a buffer to stay in the CPU's cache
// between the read and the digest; tailBufs of them let the read-back and
// the digests run on both CPUs once the writer is done.
const (
	tailBuf  = 256 << 10
	tailBufs = 4
)

func startTailer(ctx context.Context, f *os.File, digests []func([]byte)) *tailer {
	t := &tailer{fd: int(f.Fd()), name: f.Name(), digests: digests, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	free := make(chan []byte, tailBufs)
	for range tailBufs {
		free <- make([]byte, tailBuf)
	}
	full := make(chan []byte, tailBufs)
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		defer close(full)
		t.err = t.run(ctx, free, full)
	}()
	go func() {
		defer t.wg.Done()
		for b := range full {
			for _, d := range t.digests {
				d(b)
			}
			free <- b[:cap(b)]
		}
	}()
	return t
}

// publish says that the first n bytes of the image are final.
func (t *tailer) publish(n int64) {
	t.final.Store(n)
	t.wake()
}

// finish publishes the image's size and waits for the digests.
func (t *tailer) finish(size int64) error {
	t.final.Store(size)
	t.closed.Store(true)
	t.wake()
	t.wg.Wait()
	return t.err
}

// wake tells the reader there is more to read, without waiting for it.
func (t *tailer) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// abort stops the tailer without finishing the digests.
func (t *tailer) abort() {
	close(t.stop)
	t.wg.Wait()
}

func (t *tailer) run(ctx context.Context, free <-chan []byte, full chan<- []byte) error {
	var pos int64
	for {
		closed := t.closed.Load() // before final: then final is the size
		end := t.final.Load()
		for pos < end {
			var buf []byte
			select {
			case buf = <-free:
			case <-t.stop:
				return nil
			}
			n := int(min(int64(len(buf)), end-pos))
			k, err := preadFull(t.fd, buf[:n], pos)
			if err != nil {
				return fmt.Errorf("iso: reading back %s: %w", t.name, err)
			}
			clear(buf[k:n])
			full <- buf[:n]
			pos += int64(n)
		}
		if closed {
			return nil
		}
		select {
		case <-t.kick:
		case <-t.stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
