package step

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"images/pull:*", "images/pull:alpha:1.0", true},
		{"images/pull:*", "images/build:alpha:1.0", false},
		{"*:fetch", "images/alpha:fetch", true},
		{"*:fetch", "images/alpha:fetch2", false},
		{"*", "anything/at:all", true},
		{"", "x", true},
		{"iso", "iso", true},
		{"iso", "isolinux", false},
		{"x*x", "x", false},
		{"a*b*c", "abxbc", true},
		{"a*b*c", "acb", false},
	} {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

// FuzzMatch checks Match against a byte-wise dynamic-programming glob
// matcher (a regexp cannot be the oracle: names need not be UTF-8).
func FuzzMatch(f *testing.F) {
	f.Add("images/pull:*", "images/pull:alpha:1.0")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 64 || len(name) > 256 {
			return
		}
		want := pattern == "" || globDP(pattern, name)
		if got := Match(pattern, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, name, got, want)
		}
	})
}

// globDP: m[i][j] is whether pattern[:i] matches name[:j].
func globDP(pattern, name string) bool {
	m := make([][]bool, len(pattern)+1)
	for i := range m {
		m[i] = make([]bool, len(name)+1)
	}
	m[0][0] = true
	for i := 1; i <= len(pattern); i++ {
		for j := 0; j <= len(name); j++ {
			if pattern[i-1] == '*' {
				m[i][j] = m[i-1][j] || (j > 0 && m[i][j-1])
			} else {
				m[i][j] = j > 0 && m[i-1][j-1] && pattern[i-1] == name[j-1]
			}
		}
	}
	return m[len(pattern)][len(name)]
}

// chain is a two-step graph: gen writes a file from a source, use copies
// it; use depends on gen's output.
type chain struct {
	root, src, mid, out string
	runs                map[string]int
}

func newChain(t *testing.T) *chain {
	root := t.TempDir()
	c := &chain{root: root, src: filepath.Join(root, "src.txt"), mid: filepath.Join(root, "mid"), out: filepath.Join(root, "out"), runs: map[string]int{}}
	os.WriteFile(c.src, []byte("one"), 0o644)
	return c
}

func (c *chain) build(e *Engine) error {
	ctx := context.Background()
	copyTo := func(name, from, to string) func(context.Context) error {
		return func(context.Context) error {
			c.runs[name]++
			data, err := os.ReadFile(from)
			if err != nil {
				return err
			}
			return fsutil.WriteFile(to, data, 0o644)
		}
	}
	if err := e.Run(ctx, Step{Name: "gen", Inputs: []Input{File(c.src), Value("mode", "copy")}, Outputs: []string{c.mid}, Run: copyTo("gen", c.src, c.mid)}); err != nil {
		return err
	}
	return e.Run(ctx, Step{Name: "use", Inputs: []Input{Output("gen")}, Outputs: []string{c.out}, Run: copyTo("use", c.mid, c.out)})
}

func (c *chain) plan(t *testing.T) map[string]Planned {
	t.Helper()
	e := New(c.root, nil)
	e.StartPlan()
	if err := c.build(e); err != nil {
		t.Fatal(err)
	}
	m := map[string]Planned{}
	for _, p := range e.Plan() {
		m[p.Step] = p
	}
	if len(c.runs) != 0 {
		t.Fatalf("a plan ran steps: %v", c.runs)
	}
	if _, err := os.Stat(filepath.Join(c.root, "build-report.json")); err == nil {
		t.Fatal("a plan wrote a report")
	}
	return m
}

func TestPlanStatusesAndReasons(t *testing.T) {
	c := newChain(t)
	p := c.plan(t)
	if p["gen"].Status != NeverRan || p["use"].Status != NeverRan {
		t.Fatalf("fresh: %+v", p)
	}
	if d := p["use"].Deps; len(d) != 1 || d[0] != "gen" {
		t.Fatalf("use deps = %v", d)
	}
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	c.runs = map[string]int{}
	p = c.plan(t)
	for _, n := range []string{"gen", "use"} {
		if p[n].Status != UpToDate || len(p[n].Reasons) != 0 {
			t.Fatalf("after a build, %s: %+v", n, p[n])
		}
		if p[n].LastRun.IsZero() {
			t.Errorf("%s: no last run time", n)
		}
	}
	if p["gen"].Inputs["file:"+c.src] == "" || p["gen"].Target != "" {
		t.Fatalf("gen: %+v", p["gen"])
	}

	// A changed input is named, and the dependent would run after it.
	os.WriteFile(c.src, []byte("two"), 0o644)
	p = c.plan(t)
	if p["gen"].Status != WouldRun || !strings.Contains(strings.Join(p["gen"].Reasons, "\n"), "input file:"+c.src+" changed") {
		t.Fatalf("gen: %+v", p["gen"])
	}
	if p["use"].Status != WouldRun || !strings.Contains(strings.Join(p["use"].Reasons, "\n"), "step:gen") {
		t.Fatalf("use: %+v", p["use"])
	}
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	c.runs = map[string]int{}

	// A missing output is named.
	os.Remove(c.out)
	p = c.plan(t)
	if p["gen"].Status != UpToDate {
		t.Fatalf("gen: %+v", p["gen"])
	}
	if p["use"].Status != WouldRun || !strings.Contains(strings.Join(p["use"].Reasons, "\n"), "output "+c.out+" is missing") {
		t.Fatalf("use: %+v", p["use"])
	}
	// A modified one too.
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	c.runs = map[string]int{}
	os.WriteFile(c.mid, []byte("tampered, longer"), 0o644)
	p = c.plan(t)
	if p["gen"].Status != WouldRun || !strings.Contains(strings.Join(p["gen"].Reasons, "\n"), "output "+c.mid+" was modified") {
		t.Fatalf("gen: %+v", p["gen"])
	}
}

func TestOldStampsStayValid(t *testing.T) {
	c := newChain(t)
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	// Strip what the stamps gained, as a stamp of an older buildchain.
	stamps, _ := filepath.Glob(filepath.Join(c.root, ".stamps", "*.json"))
	for _, s := range stamps {
		var st stamp
		data, _ := os.ReadFile(s)
		json.Unmarshal(data, &st)
		data, _ = json.Marshal(stamp{Step: st.Step, InputDigest: st.InputDigest, Inputs: st.Inputs, OutputDigest: st.OutputDigest})
		os.WriteFile(s, data, 0o644)
	}
	c.runs = map[string]int{}
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	if len(c.runs) != 0 {
		t.Fatalf("old stamps re-ran %v", c.runs)
	}
	p := c.plan(t)
	if p["gen"].Status != UpToDate || !p["gen"].LastRun.IsZero() {
		t.Fatalf("%+v", p["gen"])
	}
}

func TestSelectAndForce(t *testing.T) {
	c := newChain(t)
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	// Force re-runs an up-to-date step and nothing else.
	c.runs = map[string]int{}
	e := New(c.root, nil)
	e.Force(func(n string) bool { return Match("use", n) })
	if err := c.build(e); err != nil {
		t.Fatal(err)
	}
	if c.runs["use"] != 1 || c.runs["gen"] != 0 {
		t.Fatalf("force use: runs %v", c.runs)
	}
	// Select leaves the others alone and out of the report, while their
	// stamps still feed the selected steps.
	os.WriteFile(c.src, []byte("two"), 0o644)
	c.runs = map[string]int{}
	e = New(c.root, nil)
	e.Select(func(n string) bool { return n == "use" })
	if err := c.build(e); err != nil {
		t.Fatal(err)
	}
	rs := e.Results()
	if len(rs) != 1 || rs[0].Step != "use" || rs[0].Status != UpToDate || c.runs["gen"] != 0 {
		t.Fatalf("select use: %+v, runs %v", rs, c.runs)
	}
}

func TestLogPrefixesAndReportInputs(t *testing.T) {
	c := newChain(t)
	var log bytes.Buffer
	e := New(c.root, &log)
	if err := c.build(e); err != nil {
		t.Fatal(err)
	}
	e = New(c.root, &log)
	if err := c.build(e); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	for i, want := range []string{".. ran", ".. ran", "-- up to date", "-- up to date"} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
	path := filepath.Join(c.root, "report.json")
	if err := e.WriteReport(path); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Steps []Result `json:"steps"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 2 || rep.Steps[0].Inputs["value:mode"] == "" || len(rep.Steps[1].Deps) != 1 || rep.Steps[1].Deps[0] != "gen" || rep.Steps[1].Inputs["step:gen"] == "" {
		t.Fatalf("report: %s", data)
	}
	if Failed.Prefix() != "!!" {
		t.Error("failed prefix")
	}
}

// Parallel steps finish in any order; the plan and the report do not
// depend on it: dependencies first, then by name.
func TestPlanAndReportOrderAreStable(t *testing.T) {
	root := t.TempDir()
	run := func(e *Engine, reverse bool) {
		var names []string
		for i := 0; i < 20; i++ {
			names = append(names, "pull:"+string(rune('a'+i)))
		}
		if reverse {
			for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
				names[i], names[j] = names[j], names[i]
			}
		}
		var wg sync.WaitGroup
		for _, n := range names {
			out := filepath.Join(root, n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.Run(context.Background(), Step{Name: n, Inputs: []Input{Value("v", n)}, Outputs: []string{out},
					Run: func(context.Context) error { return os.WriteFile(out, nil, 0o644) }})
			}()
		}
		wg.Wait()
		var in []Input
		for _, n := range names {
			in = append(in, Output(n))
		}
		out := filepath.Join(root, "dedup")
		e.Run(context.Background(), Step{Name: "dedup", Inputs: in, Outputs: []string{out},
			Run: func(context.Context) error { return os.WriteFile(out, nil, 0o644) }})
	}
	order := func(rs []Result) string {
		var l []string
		for _, r := range rs {
			l = append(l, r.Step)
		}
		return strings.Join(l, " ")
	}
	e1 := New(root, nil)
	run(e1, false)
	e2 := New(root, nil)
	run(e2, true)
	if a, b := order(e1.Report()), order(e2.Report()); a != b || !strings.HasSuffix(a, "pull:t dedup") || !strings.HasPrefix(a, "pull:a pull:b") {
		t.Fatalf("report orders differ or are not stable:\n%s\n%s", a, b)
	}
	var plans []string
	for _, rev := range []bool{false, true} {
		e := New(root, nil)
		e.StartPlan()
		e.SetTarget("images")
		run(e, rev)
		var l []string
		for _, p := range e.Plan() {
			l = append(l, p.Step)
		}
		plans = append(plans, strings.Join(l, " "))
	}
	if plans[0] != plans[1] || plans[0] != order(e1.Report()) {
		t.Fatalf("plan orders:\n%s\n%s", plans[0], plans[1])
	}
}

// One step asked for by two parallel callers runs once: the second waits
// and finds it up to date.
func TestSharedStepRunsOnce(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "bin")
	e := New(root, nil)
	var mu sync.Mutex
	runs := 0
	s := Step{Name: "binaries:linux/amd64", Inputs: []Input{Value("go", "1")}, Outputs: []string{out},
		Run: func(context.Context) error {
			mu.Lock()
			runs++
			mu.Unlock()
			return os.WriteFile(out, nil, 0o644)
		}}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Run(context.Background(), s); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if runs != 1 {
		t.Fatalf("ran %d times", runs)
	}
}

func TestPlanShowsForce(t *testing.T) {
	c := newChain(t)
	if err := c.build(New(c.root, nil)); err != nil {
		t.Fatal(err)
	}
	c.runs = map[string]int{}
	e := New(c.root, nil)
	e.Force(func(n string) bool { return n == "gen" })
	e.StartPlan()
	if err := c.build(e); err != nil {
		t.Fatal(err)
	}
	p := e.Plan()
	if p[0].Step != "gen" || p[0].Status != WouldRun || p[0].Reasons[0] != "forced (FORCE)" ||
		// gen rewrites its output, so use would run after it.
		p[1].Status != WouldRun || !strings.Contains(p[1].Reasons[0], "step:gen") {
		t.Fatalf("%+v", p)
	}
}
