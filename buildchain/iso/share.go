package iso

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

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
