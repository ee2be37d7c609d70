// Package step is the up-to-date engine of the buildchain.
//
// A Step declares its inputs and outputs. Before it runs, the engine
// computes a digest of the inputs and a fingerprint of the outputs and
// compares them with the stamp the step left last time; if both match, the
// step is skipped as "up to date". The stamp is removed before a step runs
// and written only after it succeeded, so an interrupted or failed run is
// never trusted later.
//
// Inputs are hashed by content (they are small: lists, configs, sources).
// Outputs are fingerprinted by path, mode, size and mtime, as make and ninja
// do: hashing gigabytes of layers on every run would defeat the warm-run
// target, and every output is written by rename, so a changed file always
// gets a new mtime or size.
package step

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Input is something a step's result depends on.
type Input interface {
	// key identifies the input in a stamp; digest is its current content digest.
	key() string
	digest(e *Engine) (string, error)
}

type fileInput string

// File is the content of one file. A missing file is an error.
func File(path string) Input { return fileInput(path) }

func (f fileInput) key() string { return "file:" + string(f) }
func (f fileInput) digest(*Engine) (string, error) {
	h := sha256.New()
	fh, err := os.Open(string(f))
	if err != nil {
		return "", err
	}
	defer fh.Close()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("reading %s: %w", f, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type treeInput string

// Tree is the content of every file below a source directory, with names,
// modes and symlink targets. A missing directory digests as empty.
func Tree(dir string) Input { return treeInput(dir) }

func (t treeInput) key() string { return "tree:" + string(t) }
func (t treeInput) digest(*Engine) (string, error) {
	return walkDigest(string(t), true)
}

type statInput string

// Stat is a file or tree by path, mode, size and mtime, as outputs are
// fingerprinted: for large trees that other steps write by rename, such as
// the ISO root, where hashing every byte each run would cost more than the
// step it guards.
func Stat(path string) Input { return statInput(path) }

func (s statInput) key() string { return "stat:" + string(s) }
func (s statInput) digest(*Engine) (string, error) {
	return walkDigest(string(s), false)
}

type valueInput struct{ name, value string }

// Value is a configuration value or a list entry, by name.
func Value(name, value string) Input { return valueInput{name, value} }

func (v valueInput) key() string { return "value:" + v.name }
func (v valueInput) digest(*Engine) (string, error) {
	s := sha256.Sum256([]byte(v.value))
	return hex.EncodeToString(s[:]), nil
}

type outputInput string

// Output is the recorded output fingerprint of another step, which must
// have run (or been found up to date) earlier in this build.
func Output(step string) Input { return outputInput(step) }

func (o outputInput) key() string { return "step:" + string(o) }
func (o outputInput) digest(e *Engine) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.done[string(o)]
	if !ok {
		return "", fmt.Errorf("step %q has not run in this build", string(o))
	}
	if e.planning && s.OutputDigest == "" {
		return "", errDepPending
	}
	return s.OutputDigest, nil
}

// Step is one unit of the build.
type Step struct {
	Name    string
	Inputs  []Input
	Outputs []string // files or directories the step owns
	// Fingerprint, when set, is the part of the outputs that is not a
	// whole file, such as the step's line in a SHA256SUM that other steps
	// also write. It is compared like Outputs: a change re-runs the step.
	Fingerprint func() (string, error)
	Run         func(ctx context.Context) error
}

// Status is how a step ended, or, when planning, how it would.
type Status string

const (
	Ran      Status = "ran"
	UpToDate Status = "up to date"
	Failed   Status = "failed"
	// WouldRun and NeverRan are the statuses of a plan: the step has a
	// stamp that no longer matches, or none at all.
	WouldRun Status = "would run"
	NeverRan Status = "never ran"
)

// Prefix is doit's mark for a status, so that people who know doit read a
// build log at a glance: "--" up to date, ".." executed, "!!" failed.
func (s Status) Prefix() string {
	switch s {
	case UpToDate:
		return "--"
	case Ran, WouldRun, NeverRan:
		return ".."
	default:
		return "!!"
	}
}

// Result is one line of the build report (docs/build-report.md).
type Result struct {
	Step        string        `json:"step"`
	Status      Status        `json:"status"`
	Duration    time.Duration `json:"-"`
	DurationMS  float64       `json:"duration_ms"`
	InputDigest string        `json:"input_digest"`
	// Inputs maps each input's key to its digest, and Deps names the
	// steps whose outputs are inputs, so that CI can diff two builds.
	Inputs map[string]string `json:"inputs,omitempty"`
	Deps   []string          `json:"deps,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// stamp is what a step leaves after it succeeded. Fields after
// OutputDigest came later: a stamp without them is still trusted (the
// digests are computed as before), info just has less to say.
type stamp struct {
	Step         string            `json:"step"`
	InputDigest  string            `json:"input_digest"`
	Inputs       map[string]string `json:"inputs"`
	OutputDigest string            `json:"output_digest"`
	Deps         []string          `json:"deps,omitempty"`
	Outputs      map[string]string `json:"outputs,omitempty"`
	Fingerprint  string            `json:"fingerprint,omitempty"`
	LastRun      *time.Time        `json:"last_run,omitempty"`
	DurationMS   float64           `json:"duration_ms,omitempty"`
}

// Engine runs steps against one build root. It is safe for concurrent use.
type Engine struct {
	BuildRoot string
	Log       io.Writer // one line per step; nil for silence

	mu      sync.Mutex
	done    map[string]stamp
	results []Result

	running map[string]*sync.Mutex // per step name, see Run

	planning bool
	target   string
	planned  map[string]*Planned
	targets  map[string]int // target name → order of SetTarget
	order    []string
	selected func(string) bool
	force    func(string) bool
	sections map[string]any // extra top-level report sections (sections.go)
}

// New returns an engine whose stamps live in buildRoot/.stamps.
func New(buildRoot string, log io.Writer) *Engine {
	return &Engine{BuildRoot: buildRoot, Log: log, done: map[string]stamp{}}
}

// maxStampName keeps a stamp's file name under NAME_MAX (255) with room for
// ".json" and a temp-file prefix and suffix.
const maxStampName = 160

// stampFile maps a step name to a file name, one to one: bytes outside
// [A-Za-z0-9.-] become _XX (hex), and "_" itself is escaped, so two names
// never share a stamp (images/pull:a:b_c and images/pull:a_b:c once did, and
// both re-ran on every build). A name whose escape is too long for a file
// name keeps a readable prefix and ends with the SHA-256 of the whole name.
func stampFile(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	s := b.String()
	if len(s) > maxStampName {
		sum := sha256.Sum256([]byte(name))
		// "~" never appears in an escaped name, so a hashed name cannot
		// equal a short escaped one.
		s = s[:maxStampName-65] + "~" + hex.EncodeToString(sum[:])
	}
	return s + ".json"
}

func (e *Engine) stampPath(name string) string {
	return filepath.Join(e.BuildRoot, ".stamps", stampFile(name))
}

// Select restricts the steps that run to those for which keep is true;
// the others are neither run nor reported, but a stamp they left still
// feeds the steps that depend on them. Nil selects every step.
func (e *Engine) Select(keep func(name string) bool) {
	e.mu.Lock()
	e.selected = keep
	e.mu.Unlock()
}

// Force makes the steps for which force is true run even when up to date.
func (e *Engine) Force(force func(name string) bool) {
	e.mu.Lock()
	e.force = force
	e.mu.Unlock()
}

// errDepPending is the digest error of an Output input whose step would
// run: its output is not known yet.
var errDepPending = errors.New("would run first")

func dupInputs(s Step) error {
	seen := map[string]bool{}
	for _, in := range s.Inputs {
		if seen[in.key()] {
			return fmt.Errorf("step %s: input %s is declared twice", s.Name, in.key())
		}
		seen[in.key()] = true
	}
	return nil
}

// inputs digests the inputs of s into a stamp. In a plan, an input whose
// digest fails is recorded by its error, not returned, so that the plan
// can say why the step would run.
func (e *Engine) inputs(s Step) (stamp, map[string]error, error) {
	st := stamp{Step: s.Name, Inputs: map[string]string{}}
	h := sha256.New()
	keys := make([]string, 0, len(s.Inputs))
	byKey := map[string]Input{}
	for _, in := range s.Inputs {
		byKey[in.key()] = in
		keys = append(keys, in.key())
		if o, ok := in.(outputInput); ok {
			st.Deps = append(st.Deps, string(o))
		}
	}
	sort.Strings(keys)
	sort.Strings(st.Deps)
	var bad map[string]error
	for _, k := range keys {
		d, err := byKey[k].digest(e)
		if err != nil {
			if !e.planning {
				return st, nil, fmt.Errorf("step %s: input %s: %w", s.Name, k, err)
			}
			if bad == nil {
				bad = map[string]error{}
			}
			bad[k] = err
			d = "?"
		}
		st.Inputs[k] = d
		fmt.Fprintf(h, "%s\x00%s\n", k, d)
	}
	st.InputDigest = hex.EncodeToString(h.Sum(nil))
	return st, bad, nil
}

// Run runs s unless it is up to date. While planning (see StartPlan) it
// records what it would do instead.
func (e *Engine) Run(ctx context.Context, s Step) error {
	start := time.Now()
	e.mu.Lock()
	planning, sel, force := e.planning, e.selected, e.force
	e.mu.Unlock()
	if planning {
		return e.plan(s)
	}
	if err := dupInputs(s); err != nil {
		return err
	}
	// Two callers of one shared step (the binaries that images and
	// packaging both need, when they run in parallel) must not both run
	// it: the second waits, then finds it up to date.
	defer e.lockName(s.Name)()
	path := e.stampPath(s.Name)
	prev, prevErr := readStamp(path)
	if sel != nil && !sel(s.Name) {
		// Not part of this run: a selected step that depends on it reads
		// the output its stamp recorded. Its own inputs are not digested,
		// since they may depend on steps that are not part of it either.
		if prevErr == nil {
			e.record(prev)
		}
		return nil
	}
	st, _, err := e.inputs(s)
	if err != nil {
		return e.finish(s.Name, start, st, Failed, err)
	}
	if prevErr == nil && prev.InputDigest == st.InputDigest && (force == nil || !force(s.Name)) {
		if out, _, _, err := outputsDigest(s); err == nil && out == prev.OutputDigest {
			e.record(prev)
			return e.finish(s.Name, start, st, UpToDate, nil)
		}
	}
	// From here on the old stamp must not survive: if we are interrupted the
	// outputs are in an unknown state.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return e.finish(s.Name, start, st, Failed, err)
	}
	if err := ctx.Err(); err != nil {
		return e.finish(s.Name, start, st, Failed, err)
	}
	if err := s.Run(ctx); err != nil {
		return e.finish(s.Name, start, st, Failed, err)
	}
	out, outs, fp, err := outputsDigest(s)
	if err != nil {
		return e.finish(s.Name, start, st, Failed, fmt.Errorf("step %s: output: %w", s.Name, err))
	}
	st.OutputDigest, st.Outputs, st.Fingerprint = out, outs, fp
	now := time.Now().UTC().Truncate(time.Millisecond)
	st.LastRun = &now
	st.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := fsutil.WriteFile(path, data, 0o644); err != nil {
		return e.finish(s.Name, start, st, Failed, err)
	}
	e.record(st)
	return e.finish(s.Name, start, st, Ran, nil)
}

func (e *Engine) lockName(name string) func() {
	e.mu.Lock()
	if e.running == nil {
		e.running = map[string]*sync.Mutex{}
	}
	m, ok := e.running[name]
	if !ok {
		m = &sync.Mutex{}
		e.running[name] = m
	}
	e.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (e *Engine) record(st stamp) {
	e.mu.Lock()
	e.done[st.Step] = st
	e.mu.Unlock()
}

// finish records the result of a step. A non-nil err overrides status.
func (e *Engine) finish(name string, start time.Time, st stamp, status Status, err error) error {
	r := Result{Step: name, Status: status, Duration: time.Since(start), InputDigest: st.InputDigest, Inputs: st.Inputs, Deps: st.Deps}
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	if err != nil {
		r.Status, r.Error = Failed, err.Error()
	}
	e.mu.Lock()
	e.results = append(e.results, r)
	if e.Log != nil {
		fmt.Fprintf(e.Log, "%s %-11s %-50s %8s\n", r.Status.Prefix(), r.Status, name, r.Duration.Round(time.Millisecond))
	}
	e.mu.Unlock()
	return err
}

// Results returns the results so far, in completion order.
func (e *Engine) Results() []Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Result(nil), e.results...)
}

// Report returns the results in the report's order, which parallel steps
// do not change: dependencies before dependents, then by name.
func (e *Engine) Report() []Result {
	rs := e.Results()
	deps := make(map[string][]string, len(rs))
	for _, r := range rs {
		deps[r.Step] = r.Deps
	}
	depth := depths(deps)
	sort.SliceStable(rs, func(i, j int) bool {
		if a, b := depth[rs[i].Step], depth[rs[j].Step]; a != b {
			return a < b
		}
		return rs[i].Step < rs[j].Step
	})
	return rs
}

// WriteReport writes the JSON build report (Report) atomically. A plan
// writes none: it must not replace the report of the last real build.
func (e *Engine) WriteReport(path string) error {
	if e.Planning() {
		return nil
	}
	data, err := json.MarshalIndent(e.reportSections(e.Report()), "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, append(data, '\n'), 0o644)
}

func readStamp(path string) (stamp, error) {
	var st stamp
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(data, &st)
	return st, err
}

// outputsDigest digests the outputs of s as a whole (the stamp's
// comparison, unchanged since the first stamps) and returns each output's
// digest and the fingerprint too, so that info can say which one changed.
func outputsDigest(s Step) (string, map[string]string, string, error) {
	h := sha256.New()
	per := map[string]string{}
	for _, p := range s.Outputs {
		d, err := walkDigest(p, false)
		if err != nil {
			return "", nil, "", err
		}
		per[p] = d
		fmt.Fprintf(h, "%s\x00%s\n", p, d)
	}
	var f string
	if s.Fingerprint != nil {
		var err error
		if f, err = s.Fingerprint(); err != nil {
			return "", nil, "", err
		}
		// Without a fingerprint the digest is what it always was, so that
		// existing stamps stay valid.
		fmt.Fprintf(h, "fingerprint\x00%s\n", f)
	}
	return hex.EncodeToString(h.Sum(nil)), per, f, nil
}

// walkDigest digests a file or tree. With content it hashes file bytes;
// without, it uses size and mtime (see the package comment). A missing
// output is an error, so a deleted output re-runs its step.
func walkDigest(root string, content bool) (string, error) {
	h := sha256.New()
	info, err := os.Lstat(root)
	if err != nil {
		if content && errors.Is(err, fs.ErrNotExist) {
			return "absent", nil
		}
		return "", err
	}
	if !info.IsDir() {
		if err := digestEntry(h, root, ".", info, content); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		return digestEntry(h, p, rel, info, content)
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestEntry(h io.Writer, path, rel string, info fs.FileInfo, content bool) error {
	fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode())
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\n", t)
	case info.Mode().IsRegular():
		if !content {
			fmt.Fprintf(h, "%d\x00%d\n", info.Size(), info.ModTime().UnixNano())
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "%d\x00", info.Size())
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		io.WriteString(h, "\n")
	default:
		io.WriteString(h, "\n")
	}
	return nil
}

// Finished reports whether the step completed (ran or was up to date)
// earlier in this build, so that a step shared by several callers runs once.
func (e *Engine) Finished(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.done[name]
	return ok
}
