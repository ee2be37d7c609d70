//go:build productbench

// Package product benchmarks the full MetalK8s ISO build at scale (issue
// 11, "Benchmark"): the demo's fixture made large enough to matter (by
// default 23 images with 36 distinct 30 MiB layers on the ISO, >= 1 GiB,
// and 315 RPMs upstream, of which 300 ship: the others stand in for
// the external base OS repositories), built through targets.Iso over the demo's local
// upstreams, which stay up for the whole run.
//
//	bash bench/product/run.sh
//
// or directly
//
//	go test -tags productbench -run TestProductBench -v -count=1 -timeout 60m ./bench/product
//
// In one run: a cold full build (reported, not held against the goal);
// then BENCH_ROUNDS rounds (default 3), each of: a full build from warm
// caches (outputs removed, BUILD_ROOT/cache and bin/ kept), a no-op
// re-run, and the copy limit (`cp --reflink=never` of the ISO to a new
// file on the same file system, no fsync: the build does not fsync the
// ISO either). Medians are reported, each figure with the load average
// read just before it. BENCH_LAYER_MIB (30), BENCH_RPMS (315),
// BENCH_RPM_KIB (16), BENCH_WARM_CPUPROFILE (CPU profiles of the warm
// builds, one file per round), BENCH_WORK (a temporary directory, removed at the
// end unless BENCH_KEEP=1) and BENCH_JSON (a file for the raw figures)
// tune it.
package product

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/demo"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/sizereport"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/buildchain/targets"
	"github.com/metalk8s/buildchain/internal/testenv"
)

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// run is one timed figure.
type run struct {
	Kind     string              `json:"kind"` // cold, warm, noop, copy, readsha
	Round    int                 `json:"round"`
	Wall     time.Duration       `json:"wall_ns"`
	Load     string              `json:"loadavg"` // before the run
	CPU      time.Duration       `json:"cpu_ns"`  // this process's user+system (children excluded)
	Steps    []step.Result       `json:"steps,omitempty"`
	Statuses map[step.Status]int `json:"statuses,omitempty"`
}

// cpuTime is this process's user+system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// project is a copy of the repository at HEAD in a git checkout of its
// own, as a release build sees it: the real lists, Salt tree, local
// images and package specs, and the sources of the CLIs they ship.
func project(t *testing.T, work string) string {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	root := filepath.Join(work, "project")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `git -C "$1" archive HEAD | tar -x -C "$2"`, "sh", repo, root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git archive: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=bench", "-c", "user.email=bench@metalk8s.invalid", "commit", "-qm", "bench"}} {
		if out, err := exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return root
}

// cleanOutputs removes what a full build makes and keeps its caches: the
// fetched blobs and RPMs, the ISO manifest's hash cache (cache/) and the
// compiled CLIs (bin/).
func cleanOutputs(t *testing.T, b *build.Session) {
	br := b.Cfg.BuildRoot
	for _, p := range []string{"root", ".stamps", "packages", "build-report.json", "SHA256SUM", "metalk8s.iso", "metalk8s.iso.asc"} {
		if err := os.RemoveAll(filepath.Join(br, p)); err != nil {
			t.Fatal(err)
		}
	}
	syncFS(t)
}

func syncFS(t *testing.T) {
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
}

// session runs the iso target in a session of its own, as `go run
// mage.go iso` does (lock, leftovers check, report), and times it whole.
func session(ctx context.Context, t *testing.T, cfg *config.Config, kind string, round int) run {
	syncFS(t)
	r := run{Kind: kind, Round: round, Load: loadavg()}
	c0 := cpuTime()
	start := time.Now()
	s, err := build.OpenConfig(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := targets.RunSubset(ctx, s, targets.Iso); err != nil {
		t.Fatalf("%s build: %v", kind, err)
	}
	r.Steps = s.Engine.Results()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r.Wall = time.Since(start)
	r.CPU = cpuTime() - c0
	r.Statuses = map[step.Status]int{}
	for _, sr := range r.Steps {
		r.Statuses[sr.Status]++
	}
	return r
}

// copyLimit copies the ISO's bytes once: cp --reflink=never to a new file
// beside it (the same file system), no fsync.
func copyLimit(t *testing.T, iso string, round int) run {
	dst := iso + ".benchcopy"
	os.Remove(dst)
	syncFS(t)
	r := run{Kind: "copy", Round: round, Load: loadavg()}
	start := time.Now()
	if out, err := exec.Command("cp", "--reflink=never", iso, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	r.Wall = time.Since(start)
	if err := os.Remove(dst); err != nil {
		t.Fatal(err)
	}
	return r
}

// readSHA is one read pass over the ISO hashed with Go's SHA-256: the
// cost of each pass the build makes over the ISO's bytes after writing it.
func readSHA(t *testing.T, iso string, round int) run {
	r := run{Kind: "readsha", Round: round, Load: loadavg()}
	start := time.Now()
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	r.Wall = time.Since(start)
	return r
}

// warmProfile writes a CPU profile of warm build round to
// $BENCH_WARM_CPUPROFILE.<round> when that is set (this process only:
// the go and rpm programs the build runs are not in it).
func warmProfile(t *testing.T, round int) func() {
	base := os.Getenv("BENCH_WARM_CPUPROFILE")
	if base == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", base, round))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func TestProductBench(t *testing.T) {
	testenv.Need(t, "docker-registry")
	if _, err := demo.LookPrograms("nginx"); err != nil {
		testenv.Need(t, "nginx")
	}
	work := os.Getenv("BENCH_WORK")
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "product-bench-"); err != nil {
			t.Fatal(err)
		}
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(work)
	}
	rounds := envInt("BENCH_ROUNDS", 3)
	sizes := demo.Sizes{
		Images:     1,
		LayerBytes: int64(envInt("BENCH_LAYER_MIB", 30)) << 20,
		RPMs:       envInt("BENCH_RPMS", 315),
		RPMBytes:   int64(envInt("BENCH_RPM_KIB", 16)) << 10,
	}
	root := project(t, work)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	t.Setenv("JOBS", "2")
	t.Setenv("PLATFORMS", "linux/amd64")
	t.Setenv("BUILD_HOST", "bench")
	// A release build signs the ISO and its manifest.
	key := rpmtest.GPGKey(t, "bench-iso", "ed25519")
	t.Setenv("ISO_SIGNING_KEY", key.SecretPath)
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var runs []run
	var sizesRep *sizereport.Report
	var isoPath string
	var upstreamTime time.Duration
	res, err := demo.Run(ctx, demo.Options{
		Cfg: cfg, BuildRoot: filepath.Join(work, "build"), Seed: 11, Sizes: sizes, Log: io.Discard,
		Build: func(ctx context.Context, b *build.Session) error {
			// The cold build: empty caches, in the demo's own session.
			r := run{Kind: "cold", Load: loadavg()}
			start := time.Now()
			if err := targets.Iso(ctx, b); err != nil {
				return err
			}
			r.Wall = time.Since(start)
			r.Steps = b.Engine.Results()
			runs = append(runs, r)
			isoPath = b.IsoPath()
			// Each later run takes the lock in a session of its own.
			if err := b.Close(); err != nil {
				return err
			}
			bcfg := *b.Cfg
			for i := 1; i <= rounds; i++ {
				cleanOutputs(t, b)
				stop := warmProfile(t, i)
				w := session(ctx, t, &bcfg, "warm", i)
				stop()
				if w.Statuses[step.UpToDate] != 0 {
					t.Errorf("warm build %d: %d step(s) up to date after the outputs were removed", i, w.Statuses[step.UpToDate])
				}
				runs = append(runs, w)
				n := session(ctx, t, &bcfg, "noop", i)
				for _, sr := range n.Steps {
					if sr.Status != step.UpToDate {
						t.Errorf("no-op %d: %s %s", i, sr.Step, sr.Status)
					}
				}
				runs = append(runs, n)
				runs = append(runs, copyLimit(t, isoPath, i))
				runs = append(runs, readSHA(t, isoPath, i))
			}
			// What the warm builds published holds: the signature (made
			// from the ISO step's SHA-256 state) and SHA256SUM.
			if out, err := rpmtest.GPGVerify(t, key.PublicPath, isoPath+".asc", isoPath); err != nil || !strings.Contains(string(out), "Good signature") {
				t.Errorf("gpg --verify %s.asc: %v\n%s", isoPath, err, out)
			}
			sums := exec.Command("sha256sum", "--strict", "-c", "SHA256SUM")
			sums.Dir = b.Cfg.BuildRoot
			if out, err := sums.CombinedOutput(); err != nil {
				t.Errorf("sha256sum -c SHA256SUM: %v\n%s", err, out)
			}
			data, err := os.ReadFile(filepath.Join(b.Cfg.BuildRoot, "build-report.json"))
			if err != nil {
				return err
			}
			var rep struct {
				Sizes *sizereport.Report `json:"sizes"`
			}
			if err := json.Unmarshal(data, &rep); err != nil {
				return err
			}
			sizesRep = rep.Sizes
			return nil
		},
	})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if res.Missing != nil {
		t.Logf("missing parts (the ISO is built from what exists): %v %v", res.Missing, res.MissingParts)
	}
	for _, s := range res.Steps {
		if s.Name == "start upstreams" {
			upstreamTime = s.Duration
		}
	}
	report(t, res, runs, sizesRep, sizes, upstreamTime)
}

func report(t *testing.T, res *demo.Result, runs []run, sz *sizereport.Report, sizes demo.Sizes, upstream time.Duration) {
	if out := os.Getenv("BENCH_JSON"); out != "" {
		data, _ := json.MarshalIndent(map[string]any{"runs": runs, "sizes": sz, "fixture": sizes}, "", "  ")
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Error(err)
		}
	}
	var b strings.Builder
	pf := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	pf("\nfixture: %d images, own layers of %d MiB, %d+ RPMs of %d KiB payload; upstreams generated and started in %s\n",
		len(res.Images), sizes.LayerBytes>>20, sizes.RPMs, sizes.RPMBytes>>10, secs(upstream))
	pkgs := 0
	for _, r := range res.Repos {
		pkgs += r.Packages
	}
	pf("ISO: %d bytes (%.2f GiB), %d packages in %d shipped repositories\n", res.ISOSize, float64(res.ISOSize)/(1<<30), pkgs, len(res.Repos))
	if sz != nil {
		pf("sizes: images stored %d bytes (%.2f GiB), inputs %d bytes in %d files, ISO %d bytes, ISO - inputs %d bytes (%.3f%%)\n",
			sz.ImagesStored, float64(sz.ImagesStored)/(1<<30), sz.Inputs, sz.InputsN, sz.ISO, sz.Overhead, 100*float64(sz.Overhead)/float64(sz.Inputs))
		for _, r := range sz.Repos {
			pf("  repo %s: %d bytes\n", r.Name, r.Bytes)
		}
	}
	kinds := map[string][]time.Duration{}
	pf("\n| run | round | wall (s) | load average before | Go CPU (s) | steps ran / up to date |\n|---|---:|---:|---|---:|---|\n")
	for _, r := range runs {
		kinds[r.Kind] = append(kinds[r.Kind], r.Wall)
		st := ""
		if r.Steps != nil {
			ran, up := 0, 0
			for _, s := range r.Steps {
				if s.Status == step.UpToDate {
					up++
				} else {
					ran++
				}
			}
			st = fmt.Sprintf("%d / %d", ran, up)
		}
		cpu := ""
		if r.CPU > 0 {
			cpu = secs(r.CPU)
		}
		pf("| %s | %d | %s | %s | %s | %s |\n", r.Kind, r.Round, secs(r.Wall), r.Load, cpu, st)
	}
	// Per step: cold, and the median of the warm runs.
	stepTimes := map[string][]time.Duration{}
	var order []string
	var cold map[string]time.Duration
	for _, r := range runs {
		switch r.Kind {
		case "cold":
			cold = map[string]time.Duration{}
			for _, s := range r.Steps {
				cold[s.Step] = s.Duration
			}
		case "warm":
			for _, s := range r.Steps {
				if _, ok := stepTimes[s.Step]; !ok {
					order = append(order, s.Step)
				}
				stepTimes[s.Step] = append(stepTimes[s.Step], s.Duration)
			}
		}
	}
	pf("\n| step | cold (s) | warm, median (s) | warm runs (s) |\n|---|---:|---:|---|\n")
	for _, name := range order {
		var all []string
		for _, d := range stepTimes[name] {
			all = append(all, secs(d))
		}
		pf("| %s | %s | %s | %s |\n", name, secs(cold[name]), secs(median(stepTimes[name])), strings.Join(all, ", "))
	}
	w, n, c, h := median(kinds["warm"]), median(kinds["noop"]), median(kinds["copy"]), median(kinds["readsha"])
	pf("\nmedians: cold %s s (1 run), warm full build %s s, no-op %s s, copy limit %s s, one read+SHA-256 pass of the ISO %s s\n",
		secs(median(kinds["cold"])), secs(w), secs(n), secs(c), secs(h))
	pf("warm full build / copy limit = %.2fx (goal 1.5x); no-op %s s (goal < 1 s)\n", float64(w)/float64(c), secs(n))

	fmt.Print(b.String())
}
