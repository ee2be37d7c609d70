package oci

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress reports fetch progress: bars per image and overall on a
// terminal, one plain line per image elsewhere (CI logs). A nil *Progress
// is silent.
type Progress struct {
	w  io.Writer
	mu sync.Mutex
	p  *mpb.Progress // nil when not a terminal

	total   *mpb.Bar
	sum     int64
	bars    map[string]*mpb.Bar
	fetched map[string]int64
	cached  map[string]int64
}

// NewProgress writes to w, with bars when w is a terminal.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w, bars: map[string]*mpb.Bar{}, fetched: map[string]int64{}, cached: map[string]int64{}}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
			p.total = p.p.AddBar(0, mpb.BarPriority(1<<30),
				mpb.PrependDecorators(decor.Name("total", decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
		}
	}
	return p
}

func key(im Image) string { return im.Name + ":" + im.Version }

// Start announces an image and the bytes of its blobs.
func (p *Progress) Start(im Image, size int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum += size
	if p.p != nil {
		p.total.SetTotal(p.sum, false)
		p.bars[key(im)] = p.p.AddBar(size,
			mpb.PrependDecorators(decor.Name(key(im), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
			mpb.BarRemoveOnComplete())
	}
}

// Bytes counts n bytes received for im.
func (p *Progress) Bytes(im Image, n int64) {
	if p == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetched[key(im)] += n
	if p.p != nil {
		if b := p.bars[key(im)]; b != nil {
			b.IncrInt64(n)
		}
		p.total.IncrInt64(n)
	}
}

// Blob records a blob of im as complete; cached means nothing was fetched.
func (p *Progress) Blob(im Image, digest string, size int64, cached bool) {
	if p == nil || !cached {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cached[key(im)] += size
	if p.p != nil {
		if b := p.bars[key(im)]; b != nil {
			b.IncrInt64(size)
		}
		p.total.IncrInt64(size)
	}
}

// Done closes the image's bar, or prints its line.
func (p *Progress) Done(im Image, err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key(im)
	if b := p.bars[k]; b != nil {
		if err != nil {
			b.Abort(true)
		} else {
			b.SetTotal(-1, true)
		}
		return
	}
	if err == nil {
		fmt.Fprintf(p.w, "fetched %s: %s transferred, %s from cache\n", k, HumanBytes(p.fetched[k]), HumanBytes(p.cached[k]))
	}
}

// Wait flushes the bars; call it before printing anything else.
func (p *Progress) Wait() {
	if p == nil || p.p == nil {
		return
	}
	p.total.SetTotal(-1, true)
	p.p.Wait()
}

// HumanBytes formats n in binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
