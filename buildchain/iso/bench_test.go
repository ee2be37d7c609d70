package iso

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWriteTree writes an image of the tree named by ISO_BENCH_TREE
// (e.g. the 2 GiB tree bench/iso/run.sh makes) with the product options,
// for profiling the write path:
//
//	ISO_BENCH_TREE=/tmp/mkiso-bench/tree go test -run XXX -bench WriteTree \
//	    -benchtime 3x -cpuprofile cpu.out ./buildchain/iso/
//
// ISO_BENCH_MODE picks the checksums: "sha256" (the default), "none" or
// "md5".
func BenchmarkWriteTree(b *testing.B) {
	tree := os.Getenv("ISO_BENCH_TREE")
	if tree == "" {
		b.Skip("set ISO_BENCH_TREE to a source tree")
	}
	opts := productOpts()
	switch os.Getenv("ISO_BENCH_MODE") {
	case "none":
		opts.NoChecksumFile = true
	case "md5":
		opts.ImplantMD5 = true
	}
	out := filepath.Join(b.TempDir(), "bench.iso")
	for b.Loop() {
		res, err := Write(context.Background(), out, tree, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(res.Size)
	}
}
