package solution

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// maxLinks is the number of symbolic links one lookup may follow, as Linux
// counts them (MAXSYMLINKS): the 41st fails with ELOOP.
const maxLinks = 40

// linkKind is what resolving a symbolic link gives.
type linkKind int

const (
	linkInside   linkKind = iota // resolves to an entry of the archive
	linkDangling                 // a component is missing or not a directory
	linkEscape                   // reaches above the archive root, or an absolute path
	linkLoop                     // more than maxLinks links followed
	linkEmpty                    // an empty target, which no kernel resolves
)

func (k linkKind) String() string {
	return [...]string{"inside", "dangling", "escape", "loop", "empty"}[k]
}

// linkResult is the resolution of one link.
type linkResult struct {
	kind linkKind
	// path is where resolution ends, relative to the archive root ("" is
	// the root). For a dangling link, it is where the path would lead if
	// the missing components were directories.
	path  string
	isDir bool
	// links counts the links followed, this one included, up to the
	// verdict: a link met later in a longer lookup adds this many.
	links int
	// via lists this link and the links its lookup followed, in order, up
	// to an escape (those of nested lookups only when they escape); absolute
	// is the absolute target met, if that was the escape.
	via      []string
	absolute string
	// partial marks a result cut short by the nesting bound of the lookup
	// that asked for it: true there, not of the link alone, so not kept.
	partial bool
}

// linkResolver resolves the links of an archive the way the kernel does
// for a file system mounted at an unknown place: component by component,
// following every link met, intermediate or final, with the archive root as
// the root. Where openat2's RESOLVE_IN_ROOT clamps ".." at the root and
// absolute targets to it, the resolver reports them: on a mounted archive
// they lead out of it. Unlike the kernel, it goes on past a missing
// component as if it were a directory, so that a link dangling today
// ("missing/../../etc") is still reported when it would escape.
//
// A link resolves the same way wherever the lookup that meets it started,
// so each result is computed once; the work is bounded by the total length
// of the targets, times maxLinks for the results cut short.
type linkResolver struct {
	nodes map[string]node
	memo  map[string]*linkResult // nil value: being resolved
}

func newLinkResolver(nodes map[string]node) *linkResolver {
	return &linkResolver{nodes: nodes, memo: map[string]*linkResult{}}
}

// resolve resolves the link at p, which nests depth lookups deep.
func (r *linkResolver) resolve(p string, depth int) linkResult {
	if res, ok := r.memo[p]; ok {
		if res == nil {
			// Resolving p needs p from the same start: the lookup can
			// only end with ELOOP.
			return linkResult{kind: linkLoop, links: maxLinks + 1}
		}
		return *res
	}
	if depth >= maxLinks {
		// Every enclosing lookup has followed a link per level already.
		return linkResult{kind: linkLoop, links: maxLinks + 1, partial: true}
	}
	r.memo[p] = nil
	res := r.walk(p, depth)
	if res.partial {
		delete(r.memo, p)
	} else {
		r.memo[p] = &res
	}
	return res
}

func (r *linkResolver) walk(p string, depth int) linkResult {
	target := r.nodes[p].Target
	switch {
	case target == "":
		return linkResult{kind: linkEmpty, links: 1}
	case strings.HasPrefix(target, "/"):
		return linkResult{kind: linkEscape, links: 1, via: []string{p}, absolute: target}
	}
	cur, isDir, dangling, partial := path.Dir(p), true, false, false
	if cur == "." {
		cur = ""
	}
	links, via := 1, []string{p}
	comps := strings.Split(target, "/")
	for i, c := range comps {
		if i > 0 && !isDir {
			// Something follows: the kernel wants a directory (ENOTDIR).
			dangling = true
		}
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return linkResult{kind: linkEscape, links: links, via: via, partial: partial}
			}
			cur, isDir = parentOf(cur), true
			continue
		}
		next := c
		if cur != "" {
			next = cur + "/" + c
		}
		n, ok := r.nodes[next]
		if !ok {
			cur, isDir, dangling = next, true, true
			continue
		}
		if n.Mode&fs.ModeSymlink == 0 {
			cur, isDir = next, n.Mode.IsDir()
			continue
		}
		sub := r.resolve(next, depth+1)
		partial = partial || sub.partial
		if links+sub.links > maxLinks {
			return linkResult{kind: linkLoop, links: maxLinks + 1, partial: partial}
		}
		links += sub.links
		switch sub.kind {
		case linkLoop:
			return linkResult{kind: linkLoop, links: maxLinks + 1, partial: partial}
		case linkEscape:
			return linkResult{kind: linkEscape, links: links, via: append(via, sub.via...), absolute: sub.absolute, partial: partial}
		case linkEmpty:
			cur, isDir, dangling = next, true, true
		default:
			via = append(via, next)
			cur, isDir, dangling = sub.path, sub.isDir, dangling || sub.kind == linkDangling
		}
	}
	res := linkResult{kind: linkInside, path: cur, isDir: isDir, links: links, partial: partial}
	if dangling {
		res.kind = linkDangling
	}
	return res
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// linkProblem says why the link n is refused, or "". A link is fine when
// it resolves inside the archive, or dangles inside it.
func (r *linkResolver) linkProblem(n node) string {
	res := r.resolve(n.Path, 0)
	switch res.kind {
	case linkEmpty:
		return "symbolic link with an empty target"
	case linkLoop:
		return fmt.Sprintf("symbolic link to %q does not resolve: it follows more than %d links (a loop; the kernel fails with ELOOP)", n.Target, maxLinks)
	case linkEscape:
		if len(res.via) == 1 {
			if res.absolute != "" {
				return fmt.Sprintf("symbolic link to the absolute path %q escapes the archive (the archive is mounted at an arbitrary place)", n.Target)
			}
			return fmt.Sprintf("symbolic link to %q escapes the archive", n.Target)
		}
		how := "goes above the archive root"
		if res.absolute != "" {
			how = fmt.Sprintf("reaches the absolute path %q", res.absolute)
		}
		return fmt.Sprintf("symbolic link to %q escapes the archive: resolved as the kernel does, through the links %s, it %s",
			n.Target, strings.Join(res.via[1:], " → "), how)
	}
	return ""
}
