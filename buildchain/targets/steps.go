package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// GraphTargets are the targets whose steps make the build graph, in the
// order a plan runs them: a step belongs to the first that declares it.
var GraphTargets = []struct {
	Name   string
	Target Target
}{
	{"images", Images},
	{"packaging", Packaging},
	{"saltTree", SaltTree},
	{"populateIso", PopulateIso},
	{"iso", Iso},
	{"solution", Solution},
}

// Plan runs the targets with b's engine in plan mode and returns every step
// they declare, with what it would do and why. A target that cannot even
// declare its steps (its list is missing, a repository is unreachable) is
// returned as an error beside the steps the others declared.
func Plan(ctx context.Context, b *build.Session, targets ...string) ([]step.Planned, error) {
	b.Engine.StartPlan()
	var errs []error
	for _, t := range GraphTargets {
		if len(targets) > 0 && !contains(targets, t.Name) {
			continue
		}
		b.Engine.SetTarget(t.Name)
		if err := t.Target(ctx, b); err != nil && !errors.Is(err, build.ErrNotBuiltYet) {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
		}
	}
	return b.Engine.Plan(), errors.Join(errs...)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// planAt opens the build of projectRoot quietly and plans it.
func planAt(ctx context.Context, projectRoot string, w io.Writer) ([]step.Planned, error) {
	b, err := build.Open(projectRoot, io.Discard)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	// FORCE shows: a forced step would run.
	if f := b.Cfg.Force; f != "" {
		b.Engine.Force(func(n string) bool { return step.Match(f, n) })
	}
	plan, err := Plan(ctx, b)
	if err != nil {
		fmt.Fprintf(w, "warning: some steps could not be listed: %v\n", err)
	}
	return plan, nil
}

func normPattern(p string) string {
	if p == "*" {
		return ""
	}
	return p
}

// Steps writes one line per step of the build graph matching pattern:
// name, status (with doit's prefix) and target.
func Steps(ctx context.Context, projectRoot, pattern string, w io.Writer) error {
	plan, err := planAt(ctx, projectRoot, w)
	if err != nil {
		return err
	}
	return WriteSteps(w, plan, pattern)
}

// WriteSteps writes the lines of Steps for a plan.
func WriteSteps(w io.Writer, plan []step.Planned, pattern string) error {
	pattern = normPattern(pattern)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	n := 0
	for _, p := range plan {
		if !step.Match(pattern, p.Step) {
			continue
		}
		n++
		fmt.Fprintf(tw, "%s %s\t%s\t%s\n", p.Status.Prefix(), p.Step, p.Status, p.Target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no step matches %q", pattern)
	}
	return nil
}

// Info writes what `doit info` does for each step matching pattern.
func Info(ctx context.Context, projectRoot, pattern string, w io.Writer) error {
	plan, err := planAt(ctx, projectRoot, w)
	if err != nil {
		return err
	}
	return WriteInfo(w, plan, pattern)
}

// WriteInfo writes the info of the steps of plan matching pattern.
func WriteInfo(w io.Writer, plan []step.Planned, pattern string) error {
	pattern = normPattern(pattern)
	n := 0
	for _, p := range plan {
		if !step.Match(pattern, p.Step) {
			continue
		}
		if n > 0 {
			fmt.Fprintln(w)
		}
		n++
		fmt.Fprintf(w, "%s\n  target: %s\n  status: %s\n", p.Step, p.Target, p.Status)
		if len(p.Reasons) > 0 {
			fmt.Fprintln(w, "  would run because:")
			for _, r := range p.Reasons {
				fmt.Fprintf(w, "    - %s\n", r)
			}
		}
		if p.LastRun.IsZero() {
			fmt.Fprintln(w, "  last run: unknown")
		} else {
			fmt.Fprintf(w, "  last run: %s, took %s\n", p.LastRun.Format(time.RFC3339), p.LastDuration.Round(time.Millisecond))
		}
		fmt.Fprintln(w, "  inputs:")
		keys := make([]string, 0, len(p.Inputs))
		for k := range p.Inputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "    %s  %s\n", p.Inputs[k], k)
		}
		fmt.Fprintf(w, "  depends on: %s\n", listOrNone(p.Deps))
		fmt.Fprintln(w, "  outputs:")
		for _, o := range p.Outputs {
			fmt.Fprintf(w, "    %s\n", o)
		}
	}
	if n == 0 {
		return fmt.Errorf("no step matches %q", pattern)
	}
	return nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}

// Closure is the set of steps of plan matching pattern, with every step
// they depend on, transitively.
func Closure(plan []step.Planned, pattern string) map[string]bool {
	deps := map[string][]string{}
	for _, p := range plan {
		deps[p.Step] = p.Deps
	}
	keep := map[string]bool{}
	var add func(string)
	add = func(n string) {
		if keep[n] {
			return
		}
		keep[n] = true
		for _, d := range deps[n] {
			add(d)
		}
	}
	for _, p := range plan {
		if step.Match(pattern, p.Step) {
			add(p.Step)
		}
	}
	return keep
}

// applySubset sets STEPS and FORCE on b's engine. With STEPS, target is
// first planned to learn the graph, since steps declare their
// dependencies only when they run.
func applySubset(ctx context.Context, b *build.Session, target Target) error {
	if f := b.Cfg.Force; f != "" {
		b.Engine.Force(func(n string) bool { return step.Match(f, n) })
	}
	if b.Cfg.Steps == "" {
		return nil
	}
	// The plan's own lines (a part missing, 0 B transferred) would only
	// repeat, or contradict, what the run prints next.
	log := b.Log
	b.Log = io.Discard
	b.Engine.StartPlan()
	err := target(ctx, b)
	plan := b.Engine.Plan()
	b.Engine.StopPlan()
	b.Log = log
	if err != nil && !errors.Is(err, build.ErrNotBuiltYet) {
		return err
	}
	keep := Closure(plan, b.Cfg.Steps)
	if len(keep) == 0 {
		return fmt.Errorf("STEPS=%s: no step of this target matches", b.Cfg.Steps)
	}
	b.Engine.Select(func(n string) bool { return keep[n] })
	return nil
}
