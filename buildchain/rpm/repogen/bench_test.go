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

// BenchmarkUpdate runs an incremental Generate over $REPOGEN_BENCH_UPDATE
// starting, each time, from a copy of the repodata in
// $REPOGEN_BENCH_UPDATE_OLD (bench/packages/update.sh leaves both in
// /tmp/metalk8s-bench-packages: update-repo and md-update).
func BenchmarkUpdate(b *testing.B) {
	dir, old := os.Getenv("REPOGEN_BENCH_UPDATE"), os.Getenv("REPOGEN_BENCH_UPDATE_OLD")
	if dir == "" || old == "" {
		b.Skip("REPOGEN_BENCH_UPDATE or REPOGEN_BENCH_UPDATE_OLD not set")
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.RemoveAll(filepath.Join(dir, "repodata"))
		if err := os.CopyFS(filepath.Join(dir, "repodata"), os.DirFS(old)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := Generate(context.Background(), dir, Options{Workers: 2, Incremental: true})
		if err != nil {
			b.Fatal(err)
		}
		if st.Read != 1 {
			b.Fatalf("%+v: want 1 package read", st)
		}
	}
}
