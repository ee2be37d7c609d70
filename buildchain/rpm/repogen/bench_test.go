package repogen

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkGenerate runs a full Generate over the RPMs of
// $REPOGEN_BENCH_DIR (e.g. the corpus bench/packages/run.sh generates in
// /tmp/metalk8s-bench-packages/repo); it writes DIR/repodata.
func BenchmarkGenerate(b *testing.B) {
	dir := os.Getenv("REPOGEN_BENCH_DIR")
	if dir == "" {
		b.Skip("REPOGEN_BENCH_DIR not set")
	}
	epoch := time.Unix(1700000000, 0)
	b.ReportAllocs()
	for b.Loop() {
		os.RemoveAll(filepath.Join(dir, "repodata"))
		if _, err := Generate(context.Background(), dir, Options{Epoch: &epoch, Workers: 2}); err != nil {
			b.Fatal(err)
		}
	}
}
