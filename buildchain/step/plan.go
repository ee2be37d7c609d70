package step

import (
	"fmt"
	"sort"
	"time"
)

// Planned is what a plan knows of one step: what `steps` lists and `info`
// prints.
type Planned struct {
	Step   string
	Target string // the target that declared it first
	Status Status // UpToDate, WouldRun or NeverRan
	// Reasons say why the step would run: an input that changed, an
	// output missing or modified, a dependency that would run first.
	Reasons []string
	Inputs  map[string]string // key → current digest ("?" when unreadable)
	Deps    []string
	Outputs []string
	// LastRun and LastDuration come from the stamp; zero when unknown.
	LastRun      time.Time
	LastDuration time.Duration
}

// StartPlan puts the engine in plan mode: from now on Run decides what
// each step would do and records it, but never calls the step's Run, and
// WriteReport writes nothing. The targets then run unchanged to enumerate
// the graph. A step whose input is the output of a step that would run
// would run too.
func (e *Engine) StartPlan() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.planning = true
	e.planned = map[string]*Planned{}
	e.targets = map[string]int{}
	e.order = nil
	e.done = map[string]stamp{}
}

// Planning reports whether the engine is planning, for the few target
// actions that are not steps and must not run in a plan (pruning).
func (e *Engine) Planning() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.planning
}

// SetTarget names the target whose steps are planned next.
func (e *Engine) SetTarget(name string) {
	e.mu.Lock()
	e.target = name
	if _, ok := e.targets[name]; !ok {
		e.targets[name] = len(e.targets)
	}
	e.mu.Unlock()
}

// Plan returns the planned steps in a stable order, whatever order
// parallel steps were declared in: by target (in the order SetTarget named
// them), then dependencies before dependents, then by name.
func (e *Engine) Plan() []Planned {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Planned, 0, len(e.order))
	for _, n := range e.order {
		out = append(out, *e.planned[n])
	}
	deps := make(map[string][]string, len(out))
	for _, p := range out {
		deps[p.Step] = p.Deps
	}
	depth := depths(deps)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ta, tb := e.targets[a.Target], e.targets[b.Target]; ta != tb {
			return ta < tb
		}
		if depth[a.Step] != depth[b.Step] {
			return depth[a.Step] < depth[b.Step]
		}
		return a.Step < b.Step
	})
	return out
}

// depths is each step's distance from the steps that depend on nothing:
// sorting by it puts every step after its dependencies.
func depths(deps map[string][]string) map[string]int {
	d := make(map[string]int, len(deps))
	visiting := map[string]bool{}
	var walk func(string) int
	walk = func(n string) int {
		if v, ok := d[n]; ok {
			return v
		}
		if visiting[n] { // a cycle cannot run; do not loop on it either
			return 0
		}
		visiting[n] = true
		max := 0
		for _, x := range deps[n] {
			if v := walk(x) + 1; v > max {
				max = v
			}
		}
		d[n] = max
		return max
	}
	for n := range deps {
		walk(n)
	}
	return d
}

func (e *Engine) plan(s Step) error {
	e.mu.Lock()
	_, seen := e.planned[s.Name]
	target, force := e.target, e.force
	e.mu.Unlock()
	if seen {
		// Declared again by a later target (images inside populateIso).
		return nil
	}
	if err := dupInputs(s); err != nil {
		return err
	}
	cur, bad, err := e.inputs(s)
	if err != nil {
		return err
	}
	p := &Planned{Step: s.Name, Target: target, Inputs: cur.Inputs, Deps: cur.Deps, Outputs: s.Outputs}
	prev, perr := readStamp(e.stampPath(s.Name))
	if perr == nil {
		if prev.LastRun != nil {
			p.LastRun = *prev.LastRun
		}
		p.LastDuration = time.Duration(prev.DurationMS * float64(time.Millisecond))
	}
	switch {
	case perr != nil:
		p.Status = NeverRan
		p.Reasons = []string{"no stamp: it never ran, or its stamp was removed (clean, a failed run)"}
		for _, k := range sortedKeys(bad) {
			p.Reasons = append(p.Reasons, inputError(k, bad[k]))
		}
	default:
		p.Reasons = explain(prev, cur, bad, s)
		if len(p.Reasons) == 0 && force != nil && force(s.Name) {
			p.Reasons = []string{"forced (FORCE)"}
		}
		p.Status = UpToDate
		if len(p.Reasons) > 0 {
			p.Status = WouldRun
		}
	}
	done := stamp{Step: s.Name}
	if p.Status == UpToDate {
		done = prev
	}
	e.mu.Lock()
	e.planned[s.Name] = p
	e.order = append(e.order, s.Name)
	e.done[s.Name] = done
	e.mu.Unlock()
	return nil
}

func inputError(k string, err error) string {
	if err == errDepPending {
		return fmt.Sprintf("input %s: that step would run first", k)
	}
	return fmt.Sprintf("input %s cannot be read: %v", k, err)
}

// explain compares the stamp a step left with its current inputs and
// outputs, and says what differs.
func explain(prev, cur stamp, bad map[string]error, s Step) []string {
	var why []string
	for _, k := range sortedKeys(cur.Inputs) {
		if err, ok := bad[k]; ok {
			why = append(why, inputError(k, err))
			continue
		}
		old, ok := prev.Inputs[k]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("input %s is new", k))
		case old != cur.Inputs[k]:
			why = append(why, fmt.Sprintf("input %s changed: %s → %s", k, short(old), short(cur.Inputs[k])))
		}
	}
	for _, k := range sortedKeys(prev.Inputs) {
		if _, ok := cur.Inputs[k]; !ok {
			why = append(why, fmt.Sprintf("input %s was removed", k))
		}
	}
	if len(why) == 0 && prev.InputDigest != cur.InputDigest {
		why = append(why, "input digest changed")
	}
	if len(why) > 0 {
		// The outputs will be rewritten anyway.
		return why
	}
	// The common case, nothing changed, walks the outputs once.
	out, _, fp, err := outputsDigest(s)
	if err == nil && out == prev.OutputDigest {
		return nil
	}
	for _, o := range s.Outputs {
		d, err := walkDigest(o, false)
		switch {
		case err != nil:
			why = append(why, fmt.Sprintf("output %s is missing or unreadable: %v", o, err))
		case prev.Outputs != nil && prev.Outputs[o] != d:
			why = append(why, fmt.Sprintf("output %s was modified", o))
		}
	}
	switch {
	case len(why) > 0:
	case err != nil:
		why = append(why, fmt.Sprintf("output fingerprint: %v", err))
	case prev.Outputs != nil && fp != prev.Fingerprint:
		why = append(why, "output fingerprint changed (another writer of a shared file)")
	default:
		why = append(why, "outputs changed since the step last ran")
	}
	return why
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// StopPlan leaves plan mode: the engine runs steps again, with nothing of
// the plan left in this build's record.
func (e *Engine) StopPlan() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.planning = false
	e.done = map[string]stamp{}
}
