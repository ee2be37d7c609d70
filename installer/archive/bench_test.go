package archive

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
)

// BenchmarkOpen measures steps 1-3 of `archive add` on one ISO of
// ARCHIVE_BENCH_MB megabytes (default 256) in 4 MB files, with and
// without the per-file check. The ISO is written once per run:
//
//	ARCHIVE_BENCH_MB=2048 go test -run XXX -bench Open -benchtime 3x ./installer/archive
func BenchmarkOpen(b *testing.B) {
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("ARCHIVE_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	src := b.TempDir()
	os.WriteFile(filepath.Join(src, "product.txt"), []byte("NAME=MetalK8s\nVERSION=2.0.0\n"), 0o644)
	buf := make([]byte, 4<<20)
	for i := 0; i < mb/4; i++ {
		rand.Read(buf)
		d := filepath.Join(src, "packages", fmt.Sprint(i%16))
		os.MkdirAll(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d.rpm", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	entries, err := isomanifest.Build(os.DirFS(src), isomanifest.HashFile)
	if err != nil {
		b.Fatal(err)
	}
	data, _ := isomanifest.Marshal(entries)
	os.WriteFile(filepath.Join(src, isomanifest.Name), data, 0o644)
	out := filepath.Join(b.TempDir(), "metalk8s.iso")
	res, err := iso.Write(context.Background(), out, src, iso.ProductOptions("MetalK8s 2.0.0", epoch))
	if err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(src)
	for _, c := range []struct {
		name string
		o    Options
	}{{"sha256sum+files", Options{}}, {"sha256sum-only", Options{SkipFileCheck: true}}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(res.Size)
			for i := 0; i < b.N; i++ {
				a, err := Open(out, c.o)
				if err != nil {
					b.Fatal(err)
				}
				a.Close()
			}
		})
	}
	// The limit: reading the file once.
	b.Run("read-once", func(b *testing.B) {
		b.SetBytes(res.Size)
		for i := 0; i < b.N; i++ {
			f, _ := os.Open(out)
			io.Copy(io.Discard, f)
			f.Close()
		}
	})
}
