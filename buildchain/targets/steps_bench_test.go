package targets

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
)

// BenchmarkStepsAndInfo500Images plans the images target over a list of
// 500 images (none fetched: the cost of parsing the list and digesting
// every step's inputs, as `steps` and `info` pay it on a fresh checkout),
// then writes steps and info. step.BenchmarkPlan500Images measures the
// warm case, where every output is fingerprinted too.
func BenchmarkStepsAndInfo500Images(b *testing.B) {
	root := b.TempDir()
	var list strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&list, "- name: image-%03d\n  version: \"1.0\"\n  source: docker.io/library/image-%03d\n  digest: sha256:%064d\n", i, i, i)
	}
	os.WriteFile(filepath.Join(root, "images.yaml"), []byte(list.String()), 0o644)
	b.Setenv("BUILD_ROOT", filepath.Join(root, "dist"))
	b.Setenv("IMAGES_FILE", filepath.Join(root, "images.yaml"))
	b.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	cfg, err := config.Load(root)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bd, err := build.OpenConfig(cfg, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		plan, err := Plan(context.Background(), bd, "images")
		if err != nil {
			b.Fatal(err)
		}
		if len(plan) != 501 {
			b.Fatalf("%d steps", len(plan))
		}
		if err := WriteSteps(io.Discard, plan, ""); err != nil {
			b.Fatal(err)
		}
		if err := WriteInfo(io.Discard, plan, "images/pull:image-250:1.0"); err != nil {
			b.Fatal(err)
		}
		bd.Close()
	}
}
