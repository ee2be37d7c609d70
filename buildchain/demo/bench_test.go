package demo_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/demo"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/buildchain/targets"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// BenchmarkNoopRebuild measures a re-run of the full ISO build over the
// demo's upstreams (the demo's default fixture) with nothing changed:
// what `go run mage.go iso` costs when everything is up to date. Each
// iteration is a whole run as the iso target makes it: a session opened
// on the build root (lock, leftovers check), the target, the report
// written. The project is a git checkout, as product.txt's GIT asks `git
// describe` about it. Every step must report up to date. Goal: under 1 s.
func BenchmarkNoopRebuild(b *testing.B) {
	testenv.Need(b, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(b, "nginx")
	}
	root := e2eProject(b)
	if git, err := exec.LookPath("git"); err == nil {
		for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=bench", "-c", "user.email=bench@metalk8s.invalid", "commit", "-qm", "bench"}} {
			if out, err := exec.Command(git, append([]string{"-C", root}, args...)...).CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
	}
	runDemo(b, root, demo.DefaultSizes(), func(ctx context.Context, d *build.Session) {
		// The demo's session gives up the lock; each run takes it.
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		steps := 0
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s, err := build.OpenConfig(d.Cfg, d.Log)
			if err != nil {
				b.Fatal(err)
			}
			if err := targets.RunSubset(ctx, s, targets.Iso); err != nil {
				b.Fatal(err)
			}
			rs := s.Engine.Results()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if r.Status != step.UpToDate {
					b.Fatalf("no-op re-run: %s %s", r.Step, r.Status)
				}
			}
			steps = len(rs)
		}
		b.StopTimer()
		b.ReportMetric(float64(steps), "steps")
	})
}
