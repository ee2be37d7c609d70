// Package depsolve computes the dependency closure of a set of requested
// packages over the primary metadata of several repositories, the way
// `repoquery --requires --resolve --recursive` did for MetalK8s: requires
// are matched against provides (versioned, with rpm's EVR rules) and
// against file provides; only x86_64 and noarch packages are considered;
// the newest satisfying package wins unless the request pins a version;
// candidates that an already chosen package obsoletes or conflicts with
// are passed over. An unresolvable requirement is an error naming the
// whole chain from the request that led to it.
package depsolve

import (
	"fmt"
	"sort"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/rpm/evr"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
)

// Arches are the architectures a MetalK8s node installs.
var Arches = map[string]bool{"x86_64": true, "noarch": true}

// Repo is one repository's packages, in the order repositories are
// preferred when two carry the same package.
type Repo struct {
	Name     string
	Packages []*repomd.Package
}

// Request asks for one package by name, optionally pinned. Pin is a
// version, version-release or epoch:version-release; a pin without a
// release matches any release of that version.
type Request struct {
	Name string
	Pin  string
	Set  string // the package set it comes from, for errors
}

// Chosen is one package of the closure.
type Chosen struct {
	Pkg  *repomd.Package
	Repo string
	// Why is the chain that pulled it in: the request, then each
	// "package requires dep" step.
	Why []string
}

type cand struct {
	pkg  *repomd.Package
	repo int
}

type provider struct {
	c   *cand
	dep repomd.Dep
}

// Solver holds the indexes of a set of repositories.
type Solver struct {
	repos    []Repo
	byName   map[string][]*cand
	provides map[string][]provider
	files    map[string][]*cand
}

// New indexes repos. Packages of other architectures are dropped here.
func New(repos []Repo) *Solver {
	s := &Solver{repos: repos, byName: map[string][]*cand{}, provides: map[string][]provider{}, files: map[string][]*cand{}}
	for ri, r := range repos {
		for _, p := range r.Packages {
			if !Arches[p.Arch] {
				continue
			}
			c := &cand{pkg: p, repo: ri}
			s.byName[p.Name] = append(s.byName[p.Name], c)
			for _, d := range p.Provides {
				s.provides[d.Name] = append(s.provides[d.Name], provider{c, d})
			}
			for _, f := range p.Files {
				s.files[f.Path] = append(s.files[f.Path], c)
			}
		}
	}
	return s
}

// UnresolvedError is an unsatisfiable requirement with the chain behind it.
type UnresolvedError struct {
	Set   string
	Chain []string
	Dep   string
	Repos []string
	Why   string // extra detail, e.g. what obsoletes or conflicts ruled out
}

func (e *UnresolvedError) Error() string {
	msg := fmt.Sprintf("package set %q: %s: nothing provides %s in repos %s", e.Set, strings.Join(e.Chain, " -> "), e.Dep, strings.Join(e.Repos, ", "))
	if e.Why != "" {
		msg += " (" + e.Why + ")"
	}
	return msg
}

type state struct {
	s      *Solver
	chosen map[*repomd.Package]*Chosen
	order  []*Chosen
	byName map[string]*repomd.Package // a name is installed once
}

// Solve returns the closure of reqs, sorted by repository then NEVRA.
func (s *Solver) Solve(reqs []Request) ([]*Chosen, error) {
	st := &state{s: s, chosen: map[*repomd.Package]*Chosen{}, byName: map[string]*repomd.Package{}}
	// Requests first, all of them, so that a pin is never overridden by a
	// dependency resolved earlier to a newer version.
	var queue []*Chosen
	for _, r := range reqs {
		c, err := st.request(r)
		if err != nil {
			return nil, err
		}
		if c != nil {
			queue = append(queue, c)
		}
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range cur.Pkg.Requires {
			if strings.HasPrefix(d.Name, "rpmlib(") || st.satisfied(d) {
				continue
			}
			c, why := st.best(d)
			if c == nil {
				return nil, &UnresolvedError{Set: setOf(cur), Chain: cur.Why, Dep: d.String(), Repos: s.repoNames(), Why: why}
			}
			ch := &Chosen{Pkg: c.pkg, Repo: s.repos[c.repo].Name, Why: append(append([]string(nil), cur.Why...), c.pkg.NEVRA()+" (for "+cur.Pkg.Name+" requires "+d.String()+")")}
			st.add(ch)
			queue = append(queue, ch)
		}
	}
	if err := st.checkConflicts(); err != nil {
		return nil, err
	}
	out := st.order
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repo != out[j].Repo {
			return out[i].Repo < out[j].Repo
		}
		return out[i].Pkg.NEVRA() < out[j].Pkg.NEVRA()
	})
	return out, nil
}

func setOf(c *Chosen) string {
	if len(c.Why) > 0 {
		if s, _, ok := strings.Cut(c.Why[0], ": "); ok {
			return strings.TrimPrefix(s, "set ")
		}
	}
	return ""
}

func (s *Solver) repoNames() []string {
	var n []string
	for _, r := range s.repos {
		n = append(n, r.Name)
	}
	return n
}

func (st *state) add(c *Chosen) {
	st.chosen[c.Pkg] = c
	st.byName[c.Pkg.Name] = c.Pkg
	st.order = append(st.order, c)
}

// pinMatches reports whether p is the pinned version.
func pinMatches(p *repomd.Package, pin string) bool {
	if pin == "" {
		return true
	}
	want := evr.Parse(pin)
	if want.Epoch != "" && evr.Compare(want.Epoch, orZero(p.Epoch)) != 0 {
		return false
	}
	if evr.Compare(want.Version, p.Ver) != 0 {
		return false
	}
	return want.Release == "" || evr.Compare(want.Release, p.Rel) == 0
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func (st *state) request(r Request) (*Chosen, error) {
	if p := st.byName[r.Name]; p != nil {
		if pinMatches(p, r.Pin) {
			return nil, nil
		}
		return nil, fmt.Errorf("package set %q: %s is requested as %s but %s was already chosen", r.Set, r.Name, r.Pin, p.NEVRA())
	}
	var best *cand
	var seen []string
	for _, c := range st.s.byName[r.Name] {
		seen = append(seen, c.pkg.EVR().String())
		if !pinMatches(c.pkg, r.Pin) || st.ruledOut(c) != "" {
			continue
		}
		if best == nil || better(c, best) {
			best = c
		}
	}
	if best == nil {
		what := r.Name
		if r.Pin != "" {
			what += " = " + r.Pin
		}
		detail := "no package of that name"
		if len(seen) > 0 {
			sort.Strings(seen)
			detail = "available versions: " + strings.Join(seen, ", ")
		}
		return nil, &UnresolvedError{Set: r.Set, Chain: []string{"set " + r.Set + ": requested " + what}, Dep: what, Repos: st.s.repoNames(), Why: detail}
	}
	c := &Chosen{Pkg: best.pkg, Repo: st.s.repos[best.repo].Name, Why: []string{"set " + r.Set + ": requested " + best.pkg.NEVRA()}}
	st.add(c)
	return c, nil
}

// better orders candidates: newest EVR, then x86_64 over noarch (what a
// node would pick on its own arch), then the earlier repository.
func better(a, b *cand) bool {
	if c := evr.Cmp(a.pkg.EVR(), b.pkg.EVR()); c != 0 {
		return c > 0
	}
	if a.pkg.Arch != b.pkg.Arch {
		return a.pkg.Arch == "x86_64"
	}
	return a.repo < b.repo
}

// satisfied reports whether a chosen package already provides d.
func (st *state) satisfied(d repomd.Dep) bool {
	if strings.HasPrefix(d.Name, "/") {
		for _, c := range st.s.files[d.Name] {
			if st.chosen[c.pkg] != nil {
				return true
			}
		}
	}
	for _, pr := range st.s.provides[d.Name] {
		if st.chosen[pr.c.pkg] != nil && overlaps(pr.dep, d) {
			return true
		}
	}
	return false
}

func overlaps(prov, req repomd.Dep) bool {
	pf, _ := evr.ParseFlags(prov.Flags)
	rf, _ := evr.ParseFlags(req.Flags)
	return evr.Overlaps(pf, prov.EVR(), rf, req.EVR())
}

// ruledOut says why c cannot join the chosen set: another version of it is
// chosen, a chosen package obsoletes it, or it conflicts with one.
func (st *state) ruledOut(c *cand) string {
	if p := st.byName[c.pkg.Name]; p != nil && p != c.pkg {
		return p.NEVRA() + " is already chosen"
	}
	self := repomd.Dep{Name: c.pkg.Name, Flags: "EQ", Epoch: orZero(c.pkg.Epoch), Ver: c.pkg.Ver, Rel: c.pkg.Rel}
	for _, ch := range st.order {
		for _, o := range ch.Pkg.Obsoletes {
			if o.Name == c.pkg.Name && overlaps(self, o) {
				return ch.Pkg.NEVRA() + " obsoletes it"
			}
		}
		for _, k := range ch.Pkg.Conflicts {
			if k.Name == c.pkg.Name && overlaps(self, k) {
				return ch.Pkg.NEVRA() + " conflicts with it"
			}
		}
		for _, k := range c.pkg.Conflicts {
			if k.Name == ch.Pkg.Name && overlaps(repomd.Dep{Name: ch.Pkg.Name, Flags: "EQ", Epoch: orZero(ch.Pkg.Epoch), Ver: ch.Pkg.Ver, Rel: ch.Pkg.Rel}, k) {
				return "it conflicts with " + ch.Pkg.NEVRA()
			}
		}
	}
	return ""
}

// best picks the provider of d: packages named like the dependency first
// (what dnf does), then newest. It returns why candidates were rejected
// when none is left.
func (st *state) best(d repomd.Dep) (*cand, string) {
	var best *cand
	var reasons []string
	consider := func(c *cand) {
		if why := st.ruledOut(c); why != "" {
			reasons = append(reasons, c.pkg.NEVRA()+": "+why)
			return
		}
		if best == nil {
			best = c
			return
		}
		an, bn := c.pkg.Name == d.Name, best.pkg.Name == d.Name
		if an != bn {
			if an {
				best = c
			}
			return
		}
		if better(c, best) {
			best = c
		}
	}
	if strings.HasPrefix(d.Name, "/") {
		for _, c := range st.s.files[d.Name] {
			consider(c)
		}
	}
	for _, pr := range st.s.provides[d.Name] {
		if overlaps(pr.dep, d) {
			consider(pr.c)
		}
	}
	return best, strings.Join(reasons, "; ")
}

// checkConflicts rejects a closure in which two chosen packages conflict.
func (st *state) checkConflicts() error {
	for _, a := range st.order {
		for _, k := range a.Pkg.Conflicts {
			for _, pr := range st.s.provides[k.Name] {
				b := st.chosen[pr.c.pkg]
				if b == nil || b.Pkg == a.Pkg || !overlaps(pr.dep, k) {
					continue
				}
				return fmt.Errorf("package set %q: %s conflicts with %s (%s), which %s", setOf(a), a.Pkg.NEVRA(), b.Pkg.NEVRA(), k.String(), strings.Join(b.Why, " -> "))
			}
		}
	}
	return nil
}
