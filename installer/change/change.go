// Package change is how the installer touches a host: every file write,
// removal and side effect (a mount, an nginx reload) goes through a Tx,
// which records it for the change report, skips it under --dry-run, and
// can undo it. A command that fails calls Rollback, so the host keeps its
// previous working state: files are put back byte for byte with their
// modes, and the undo steps of mounts and services run in reverse order.
//
// A write whose content and mode are already there is recorded as
// unchanged and touches nothing, which is what makes every command
// idempotent and lets the second run say so.
package change

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Kind says what happened to one thing.
type Kind string

const (
	Added     Kind = "added"
	Changed   Kind = "changed"
	Removed   Kind = "removed"
	Unchanged Kind = "unchanged"
)

// Entry is one line of the change report. What names the thing in the
// host's terms ("file /etc/metalk8s/solutions.yaml", "mount
// /srv/scality/metalk8s-2.0.0"), with host paths as the node sees them,
// not behind --root.
type Entry struct {
	Kind Kind   `json:"kind"`
	What string `json:"what"`
}

// Tx is one command's set of changes. It is safe for concurrent use.
type Tx struct {
	// Root prefixes every host path (--root); "" or "/" is the host.
	Root string
	// DryRun records what would change and changes nothing.
	DryRun bool

	mu      sync.Mutex
	entries []Entry
	undo    []func() error
}

// New starts a transaction over the host root.
func New(root string, dryRun bool) *Tx { return &Tx{Root: root, DryRun: dryRun} }

// Path maps a host path (absolute, as on the node) under the root.
func (t *Tx) Path(hostPath string) string {
	if t.Root == "" || t.Root == "/" {
		return filepath.Clean(hostPath)
	}
	return filepath.Join(t.Root, filepath.Clean("/"+hostPath))
}

// Record adds an entry without doing anything: for effects the caller
// carries out itself (under !DryRun) and undoes through OnRollback.
func (t *Tx) Record(k Kind, what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = append(t.entries, Entry{k, what})
}

// OnRollback registers an undo step; Rollback runs them last first.
func (t *Tx) OnRollback(f func() error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.undo = append(t.undo, f)
}

// WriteFile makes the host file hostPath hold data with mode perm,
// atomically. It reports whether anything changed.
func (t *Tx) WriteFile(hostPath string, data []byte, perm fs.FileMode) (bool, error) {
	p := t.Path(hostPath)
	old, oldMode, existed, err := readOld(p)
	if err != nil {
		return false, err
	}
	if existed && bytes.Equal(old, data) && oldMode == perm {
		t.Record(Unchanged, "file "+hostPath)
		return false, nil
	}
	kind := Added
	if existed {
		kind = Changed
	}
	t.Record(kind, "file "+hostPath)
	if t.DryRun {
		return true, nil
	}
	if err := fsutil.WriteWith(p, perm, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return false, fmt.Errorf("writing %s: %w", hostPath, err)
	}
	t.OnRollback(restore(p, old, oldMode, existed))
	return true, nil
}

// Remove removes the host file hostPath; a missing file is no change.
func (t *Tx) Remove(hostPath string) (bool, error) {
	p := t.Path(hostPath)
	old, oldMode, existed, err := readOld(p)
	if err != nil {
		return false, err
	}
	if !existed {
		return false, nil
	}
	t.Record(Removed, "file "+hostPath)
	if t.DryRun {
		return true, nil
	}
	if err := os.Remove(p); err != nil {
		return false, err
	}
	t.OnRollback(restore(p, old, oldMode, true))
	return true, nil
}

// MkdirAll creates the host directory hostPath (0755 on every level it
// creates), recording it when it is new.
func (t *Tx) MkdirAll(hostPath string) error {
	p := t.Path(hostPath)
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", hostPath)
		}
		return nil
	}
	t.Record(Added, "directory "+hostPath)
	if t.DryRun {
		return nil
	}
	// Undo removes only the levels this call created, deepest first.
	var created []string
	for d := p; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		created = append(created, d)
	}
	if err := fsutil.MkdirAll(p); err != nil {
		return err
	}
	t.OnRollback(func() error {
		for _, d := range created {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	return nil
}

func readOld(p string) (data []byte, mode fs.FileMode, existed bool, err error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, fmt.Errorf("%s is not a regular file (%s)", p, fi.Mode().Type())
	}
	data, err = os.ReadFile(p)
	return data, fi.Mode().Perm(), true, err
}

func restore(p string, old []byte, mode fs.FileMode, existed bool) func() error {
	return func() error {
		if !existed {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		return fsutil.WriteWith(p, mode, func(w io.Writer) error { _, err := w.Write(old); return err })
	}
}

// Rollback undoes every change made so far, last first, and forgets
// them: the report then says nothing changed. Every undo step runs even
// when one fails; their errors are joined.
func (t *Tx) Rollback() error {
	t.mu.Lock()
	undo := t.undo
	t.undo = nil
	t.entries = nil
	t.mu.Unlock()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Entries returns the report's entries in the order they happened.
func (t *Tx) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Entry(nil), t.entries...)
}

// Changed reports whether anything was (or, dry, would be) changed.
func (t *Tx) Changed() bool {
	for _, e := range t.Entries() {
		if e.Kind != Unchanged {
			return true
		}
	}
	return false
}

// Print writes the change report: one line per entry grouped by kind,
// then a summary line that says "no changes" when there were none.
func (t *Tx) Print(w io.Writer) {
	es := t.Entries()
	order := map[Kind]int{Added: 0, Changed: 1, Removed: 2, Unchanged: 3}
	sort.SliceStable(es, func(i, j int) bool { return order[es[i].Kind] < order[es[j].Kind] })
	counts := map[Kind]int{}
	verb := ""
	if t.DryRun {
		verb = "would be "
	}
	for _, e := range es {
		counts[e.Kind]++
		fmt.Fprintf(w, "  %-9s %s\n", e.Kind, e.What)
	}
	var parts []string
	for _, k := range []Kind{Added, Changed, Removed} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s%s", counts[k], verb, k))
		}
	}
	if len(parts) == 0 {
		fmt.Fprintf(w, "no changes (%d checked, all as they should be)\n", counts[Unchanged])
		return
	}
	fmt.Fprintf(w, "%s, %d unchanged\n", strings.Join(parts, ", "), counts[Unchanged])
}
