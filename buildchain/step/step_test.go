package step

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

func TestUpToDateAndRerun(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "input.txt")
	out := filepath.Join(root, "out", "result.txt")
	os.WriteFile(src, []byte("one"), 0o644)
	runs := 0
	mk := func(val string) Step {
		return Step{
			Name:    "copy",
			Inputs:  []Input{File(src), Value("setting", val)},
			Outputs: []string{out},
			Run: func(context.Context) error {
				runs++
				data, err := os.ReadFile(src)
				if err != nil {
					return err
				}
				return fsutil.WriteFile(out, data, 0o644)
			},
		}
	}
	e := New(root, nil)
	ctx := context.Background()
	check := func(s Step, wantRuns int, wantStatus Status) {
		t.Helper()
		if err := e.Run(ctx, s); err != nil {
			t.Fatal(err)
		}
		if runs != wantRuns {
			t.Fatalf("runs = %d, want %d", runs, wantRuns)
		}
		rs := e.Results()
		if got := rs[len(rs)-1].Status; got != wantStatus {
			t.Fatalf("status = %q, want %q", got, wantStatus)
		}
	}
	check(mk("a"), 1, Ran)
	check(mk("a"), 1, UpToDate)
	check(mk("b"), 2, Ran) // changed value
	os.WriteFile(src, []byte("two"), 0o644)
	check(mk("b"), 3, Ran) // changed file content
	os.Remove(out)
	check(mk("b"), 4, Ran) // missing output
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(out, []byte("tampered"), 0o644)
	check(mk("b"), 5, Ran) // changed output
	check(mk("b"), 5, UpToDate)
}

func TestFailedStepLeavesNoStamp(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "o")
	e := New(root, nil)
	ok := Step{Name: "s", Inputs: []Input{Value("v", "1")}, Outputs: []string{out},
		Run: func(context.Context) error { return os.WriteFile(out, nil, 0o644) }}
	if err := e.Run(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	bad := ok
	bad.Inputs = []Input{Value("v", "2")}
	bad.Run = func(context.Context) error { return boom }
	if err := e.Run(context.Background(), bad); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(e.stampPath("s")); !os.IsNotExist(err) {
		t.Fatalf("stamp survived a failed run: %v", err)
	}
	// Back to the old inputs: the old stamp is gone, so it must run again.
	ran := false
	ok.Run = func(context.Context) error { ran = true; return os.WriteFile(out, nil, 0o644) }
	if err := e.Run(context.Background(), ok); err != nil || !ran {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
}

func TestOutputInputChainsSteps(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "a")
	e := New(root, nil)
	ctx := context.Background()
	content := "1"
	stepA := Step{Name: "a", Inputs: []Input{Value("c", content)}, Outputs: []string{a},
		Run: func(context.Context) error { return fsutil.WriteFile(a, []byte(content), 0o644) }}
	bRuns := 0
	stepB := Step{Name: "b", Inputs: []Input{Output("a")}, Outputs: nil,
		Run: func(context.Context) error { bRuns++; return nil }}
	for i := 0; i < 2; i++ {
		if err := e.Run(ctx, stepA); err != nil {
			t.Fatal(err)
		}
		if err := e.Run(ctx, stepB); err != nil {
			t.Fatal(err)
		}
	}
	if bRuns != 1 {
		t.Fatalf("b ran %d times, want 1", bRuns)
	}
	content = "22"
	stepA.Inputs = []Input{Value("c", content)}
	e2 := New(root, nil)
	if err := e2.Run(ctx, stepA); err != nil {
		t.Fatal(err)
	}
	if err := e2.Run(ctx, stepB); err != nil {
		t.Fatal(err)
	}
	if bRuns != 2 {
		t.Fatalf("b ran %d times after a changed, want 2", bRuns)
	}
	if err := New(root, nil).Run(ctx, stepB); err == nil {
		t.Fatal("Output of a step that did not run in this build must fail")
	}
}

func TestReport(t *testing.T) {
	root := t.TempDir()
	e := New(root, nil)
	e.Run(context.Background(), Step{Name: "x", Run: func(context.Context) error { return nil }})
	e.Run(context.Background(), Step{Name: "y", Run: func(context.Context) error { return errors.New("bad") }})
	p := filepath.Join(root, "build-report.json")
	if err := e.WriteReport(p); err != nil {
		t.Fatal(err)
	}
	var rep struct{ Steps []Result }
	data, _ := os.ReadFile(p)
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 2 || rep.Steps[0].Status != Ran || rep.Steps[1].Status != Failed || rep.Steps[1].Error != "bad" || rep.Steps[0].InputDigest == "" {
		t.Fatalf("report: %s", data)
	}
}

// Two names that one escaping once mapped to the same stamp each keep their
// own: a second build finds both up to date instead of re-running both.
func TestStampNamesDoNotCollide(t *testing.T) {
	root := t.TempDir()
	names := []string{"images/pull:a:b_c", "images/pull:a_b:c"}
	runs := map[string]int{}
	mk := func(name string) Step {
		out := filepath.Join(root, "out", name)
		return Step{
			Name:    name,
			Inputs:  []Input{Value("name", name)},
			Outputs: []string{out},
			Run: func(context.Context) error {
				runs[name]++
				return fsutil.WriteFile(out, []byte(name), 0o644)
			},
		}
	}
	for build := 0; build < 2; build++ {
		e := New(root, nil)
		for _, n := range names {
			if err := e.Run(context.Background(), mk(n)); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range e.Results() {
			want := Ran
			if build == 1 {
				want = UpToDate
			}
			if r.Status != want {
				t.Errorf("build %d: %s: %s, want %s", build+1, names[i], r.Status, want)
			}
		}
	}
	for _, n := range names {
		if runs[n] != 1 {
			t.Errorf("%s ran %d times, want 1", n, runs[n])
		}
	}
	if a, b := stampFile(names[0]), stampFile(names[1]); a == b {
		t.Fatalf("both names map to stamp %s", a)
	}
}

func TestStampFileNames(t *testing.T) {
	long := strings.Repeat("images/pull:registry.example/some/very/long/name:", 10)
	seen := map[string]string{}
	for _, n := range []string{"a_b", "a:b", "a/b", "a_3Ab", "a~b", ".", "..", long, long + "x", long[:len(long)-1] + "y"} {
		f := stampFile(n)
		if len(f) > 200 || strings.ContainsAny(f, "/\x00") || f == ".json" {
			t.Errorf("%q: stamp file %q is not a safe file name", n, f)
		}
		if other, dup := seen[f]; dup {
			t.Errorf("%q and %q share stamp %s", n, other, f)
		}
		seen[f] = n
	}
}

// A Fingerprint is compared like an output: when it changes, the step runs.
func TestFingerprintRerunsTheStep(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	line := "abc  x.iso"
	runs := 0
	s := Step{
		Name:        "fp",
		Inputs:      []Input{Value("v", "1")},
		Outputs:     []string{out},
		Fingerprint: func() (string, error) { return line, nil },
		Run: func(context.Context) error {
			runs++
			line = "abc  x.iso" // what the step (re)writes
			return fsutil.WriteFile(out, []byte("x"), 0o644)
		},
	}
	e := New(root, nil)
	for i, want := range []Status{Ran, UpToDate} {
		if err := e.Run(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		if got := e.Results()[i].Status; got != want {
			t.Fatalf("run %d: %s, want %s", i+1, got, want)
		}
	}
	line = "" // someone removed the line
	if err := e.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("runs = %d, want 2", runs)
	}
}
