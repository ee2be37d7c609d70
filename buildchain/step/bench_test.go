package step

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// imageGraph declares a graph shaped like the images target's with n
// images: one pull step per image (three value inputs, a directory with a
// manifest and three blobs) and a dedup step over all of them.
func imageGraph(b *testing.B, root string, n int) func(*Engine) error {
	return func(e *Engine) error {
		ctx := context.Background()
		var deps []Input
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("images/pull:image-%03d:1.0", i)
			dir := filepath.Join(root, "root", "images", fmt.Sprintf("image-%03d", i), "1.0")
			err := e.Run(ctx, Step{
				Name: name,
				Inputs: []Input{
					Value("entry", fmt.Sprintf("docker.io/library/image-%03d@sha256:%064d as image-%03d:1.0", i, i, i)),
					Value("upstream", fmt.Sprintf("127.0.0.1:5000/library/image-%03d@sha256:%064d", i, i)),
					Value("platforms", "linux/amd64"),
				},
				Outputs: []string{dir},
				Run: func(context.Context) error {
					os.MkdirAll(dir, 0o755)
					for _, f := range []string{"manifest.json", "version", "config", "layer1", "layer2"} {
						if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
							return err
						}
					}
					return nil
				},
			})
			if err != nil {
				return err
			}
			deps = append(deps, Output(name))
		}
		return e.Run(ctx, Step{Name: "images/dedup", Inputs: deps, Outputs: []string{filepath.Join(root, "root", "images")},
			Run: func(context.Context) error { return nil }})
	}
}

// warmImageGraph is imageGraph over n images after one build, with the
// benchmark timer reset: what follows measures warm runs only.
func warmImageGraph(b *testing.B, n int) (string, func(*Engine) error) {
	root := b.TempDir()
	graph := imageGraph(b, root, n)
	if err := graph(New(root, nil)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	return root, graph
}

// BenchmarkPlan500Images is what `steps` and `info` cost on a warm build of
// 500 images: every stamp read, every input digested, every output
// fingerprinted, nothing run.
func BenchmarkPlan500Images(b *testing.B) {
	root, graph := warmImageGraph(b, 500)
	for i := 0; i < b.N; i++ {
		e := New(root, nil)
		e.StartPlan()
		e.SetTarget("images")
		if err := graph(e); err != nil {
			b.Fatal(err)
		}
		p := e.Plan()
		if len(p) != 501 || p[0].Status != UpToDate || p[500].Status != UpToDate {
			b.Fatalf("plan: %d steps, %+v", len(p), p[500])
		}
	}
}

// BenchmarkNoop500Images is a warm build of the same graph: every step up
// to date.
func BenchmarkNoop500Images(b *testing.B) {
	root, graph := warmImageGraph(b, 500)
	for i := 0; i < b.N; i++ {
		e := New(root, nil)
		if err := graph(e); err != nil {
			b.Fatal(err)
		}
		if rs := e.Results(); rs[len(rs)-1].Status != UpToDate {
			b.Fatal(rs[len(rs)-1])
		}
	}
}
