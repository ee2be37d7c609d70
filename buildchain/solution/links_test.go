package solution

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// treeSpec is an archive as a list of entries, one a line: "d path",
// "f path" or "l path target". Parents are directories, made as needed.
type treeSpec []specEntry

type specEntry struct {
	kind   byte // 'd', 'f', 'l'
	path   string
	target string
}

// parseTreeSpec reads a spec, dropping what no file system holds: unclean
// or oversized paths, entries below a file or link, duplicates, targets with
// NUL, empty targets (symlink(2) refuses them).
func parseTreeSpec(s string) treeSpec {
	var spec treeSpec
	kinds := map[string]byte{}
	for _, line := range strings.Split(s, "\n") {
		if len(spec) == 64 {
			break
		}
		if len(line) < 3 || line[1] != ' ' || strings.IndexByte("dfl", line[0]) < 0 {
			continue
		}
		e := specEntry{kind: line[0], path: line[2:]}
		if e.kind == 'l' {
			i := strings.IndexByte(e.path, ' ')
			if i < 0 {
				continue
			}
			e.path, e.target = e.path[:i], e.path[i+1:]
			if e.target == "" || len(e.target) > 512 || strings.IndexByte(e.target, 0) >= 0 {
				continue
			}
		}
		if e.path == "" || len(e.path) > 128 || path.Clean(e.path) != e.path || strings.HasPrefix(e.path, "/") ||
			strings.HasPrefix(e.path, "../") || e.path == ".." || e.path == "." || strings.ContainsAny(e.path, "\x00") {
			continue
		}
		ok := true
		parts := strings.Split(e.path, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			k, seen := kinds[p]
			switch {
			case i < len(parts)-1 && seen && k != 'd', i == len(parts)-1 && seen, len(parts[i]) > 64:
				ok = false
			}
		}
		if !ok {
			continue
		}
		for i := range parts[:len(parts)-1] {
			kinds[strings.Join(parts[:i+1], "/")] = 'd'
		}
		kinds[e.path] = e.kind
		spec = append(spec, e)
	}
	return spec
}

// nodes gives the archive's node list, as openDir would list it.
func (s treeSpec) nodes() map[string]node {
	m := map[string]node{}
	for _, e := range s {
		parts := strings.Split(e.path, "/")
		for i := range parts[:len(parts)-1] {
			p := strings.Join(parts[:i+1], "/")
			m[p] = node{Path: p, Mode: fs.ModeDir | 0o755}
		}
		n := node{Path: e.path}
		switch e.kind {
		case 'd':
			n.Mode = fs.ModeDir | 0o755
		case 'f':
			n.Mode = 0o644
		case 'l':
			n.Mode, n.Target = fs.ModeSymlink|0o777, e.target
		}
		m[e.path] = n
	}
	return m
}

func (s treeSpec) create(t testing.TB, root string) {
	t.Helper()
	for _, e := range s {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch e.kind {
		case 'd':
			err = os.MkdirAll(p, 0o755)
		case 'f':
			err = os.WriteFile(p, nil, 0o644)
		case 'l':
			err = os.Symlink(e.target, p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// kernelKind resolves p under root with openat2(RESOLVE_BENEATH), which
// fails with EXDEV where a lookup leaves root, and says what our resolver
// must have found. For a lookup that fails on a missing component, the
// resolver may still find an escape or a loop past it (it looks further),
// so ENOENT and ENOTDIR allow anything but linkInside.
func kernelKind(t testing.TB, rootFD int, p string) (want []linkKind) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(rootFD, p, how)
	// EAGAIN: a rename somewhere on the system raced a ".." of the scoped
	// lookup, which the kernel then refuses to vouch for; openat2(2) says
	// to retry.
	for try := 0; errors.Is(err, unix.EAGAIN) && try < 100; try++ {
		fd, err = unix.Openat2(rootFD, p, how)
	}
	switch {
	case err == nil:
		unix.Close(fd)
		return []linkKind{linkInside}
	case errors.Is(err, unix.EXDEV):
		return []linkKind{linkEscape}
	case errors.Is(err, unix.ELOOP):
		// A scoped lookup that leaves its root after 21 to 39 links
		// fails with ELOOP, not EXDEV (seen on 6.x: the lookup is
		// retried out of RCU mode with the links of the first pass
		// still counted). Either way the link is refused.
		return []linkKind{linkLoop, linkEscape}
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return []linkKind{linkDangling, linkEscape, linkLoop}
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		t.Skipf("openat2 unavailable: %v", err)
	}
	t.Fatalf("openat2 %s: %v", p, err)
	return nil
}

// compareWithKernel builds the spec on disk and checks every link's
// verdict against the kernel's.
func compareWithKernel(t testing.TB, spec treeSpec) {
	t.Helper()
	root := t.TempDir()
	spec.create(t, root)
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFD)
	r := newLinkResolver(spec.nodes())
	for _, e := range spec {
		if e.kind != 'l' {
			continue
		}
		got := r.resolve(e.path, 0)
		want := kernelKind(t, rootFD, e.path)
		ok := false
		for _, k := range want {
			ok = ok || got.kind == k
		}
		if !ok {
			t.Errorf("%s → %q: resolver says %s, kernel wants one of %v\ntree:\n%s", e.path, e.target, got.kind.String(), kindNames(want), spec)
		}
		if got.links > maxLinks+1 || got.links < 1 {
			t.Errorf("%s: %d links counted", e.path, got.links)
		}
	}
}

func (s treeSpec) String() string {
	var b strings.Builder
	for _, e := range s {
		if e.kind == 'l' {
			fmt.Fprintf(&b, "l %s %s\n", e.path, e.target)
		} else {
			fmt.Fprintf(&b, "%c %s\n", e.kind, e.path)
		}
	}
	return b.String()
}

func kindNames(ks []linkKind) []string {
	var s []string
	for _, k := range ks {
		s = append(s, k.String())
	}
	return s
}

func chain(prefix string, n int, end string) string {
	var b strings.Builder
	for i := 0; i < n-1; i++ {
		fmt.Fprintf(&b, "l %s%d %s%d\n", prefix, i, path.Base(prefix), i+1)
	}
	fmt.Fprintf(&b, "l %s%d %s\n", prefix, n-1, end)
	return b.String()
}

// linkCases are named trees, with the verdict for each link; the same
// trees are checked against the kernel.
var linkCases = []struct {
	name string
	tree string
	want map[string]linkKind
}{
	{"issue chain", "l p/a/b/root ../../..\nl p/a/b/esc root/../../../../etc\n",
		map[string]linkKind{"p/a/b/root": linkInside, "p/a/b/esc": linkEscape}},
	{"link cancelled by ..", "f product.txt\nl a/b/root ../..\nl esc a/b/root/../etc\n",
		map[string]linkKind{"a/b/root": linkInside, "esc": linkEscape}},
	{"plain escape", "l up ../x\n", map[string]linkKind{"up": linkEscape}},
	{"absolute", "l abs /etc/passwd\nl via abs\nl rel d/../abs\nd d\n",
		map[string]linkKind{"abs": linkEscape, "via": linkEscape, "rel": linkEscape}},
	{"self loop", "l self self\n", map[string]linkKind{"self": linkLoop}},
	{"two-link loop", "l l1 l2\nl l2 l1\nl in l1/x\n", map[string]linkKind{"l1": linkLoop, "l2": linkLoop, "in": linkLoop}},
	{"directory loop", "l d/up ..\nl deep d/up/d/up/d/up/d/up/d/up/f\nf f\n",
		map[string]linkKind{"d/up": linkInside, "deep": linkInside}},
	{"dotdot inside", "f product.txt\nl a/b/up ../../product.txt\nl a/b/self ../b/./up\n",
		map[string]linkKind{"a/b/up": linkInside, "a/b/self": linkInside}},
	{"directory link as an intermediate", "f operator/deploy/crds/x.yaml\nl links/crds ../operator/deploy/crds\nl links/x crds/x.yaml\nl links/back crds/../../../links/x\nl links/out crds/../../../../x\n",
		map[string]linkKind{"links/crds": linkInside, "links/x": linkInside, "links/back": linkInside, "links/out": linkEscape}},
	{"file as an intermediate", "f f\nl a f/x\nl b f/.\nl c f/\nl e f/../../x\n",
		map[string]linkKind{"a": linkDangling, "b": linkDangling, "c": linkDangling, "e": linkEscape}},
	{"dangling", "l a missing/file\nl b missing/../../x\nl c a/../x\n",
		map[string]linkKind{"a": linkDangling, "b": linkEscape, "c": linkDangling}},
	{"40 links", chain("c/x", 40, "../f") + "f f\n", map[string]linkKind{"c/x0": linkInside, "c/x39": linkInside}},
	{"41 links", chain("c/x", 41, "../f") + "f f\n", map[string]linkKind{"c/x0": linkLoop, "c/x1": linkInside}},
	{"41 links to an escape", chain("c/x", 41, "../.."), map[string]linkKind{"c/x0": linkLoop, "c/x1": linkEscape}},
	{"40 links as intermediates", "d d\nl s0 d\n" + func() string {
		var b strings.Builder
		for i := 1; i < 40; i++ {
			fmt.Fprintf(&b, "l s%d s%d/.\n", i, i-1)
		}
		return b.String()
	}() + "l s40 s39/.\n", map[string]linkKind{"s39": linkInside, "s40": linkLoop}},
}

func TestResolveLinks(t *testing.T) {
	for _, tc := range linkCases {
		t.Run(tc.name, func(t *testing.T) {
			spec := parseTreeSpec(tc.tree)
			r := newLinkResolver(spec.nodes())
			for p, want := range tc.want {
				if got := r.resolve(p, 0); got.kind != want {
					t.Errorf("%s: got %s, want %s", p, got.kind.String(), want.String())
				}
			}
			// The verdicts do not depend on the order links are met.
			r2 := newLinkResolver(spec.nodes())
			for i := len(spec) - 1; i >= 0; i-- {
				if spec[i].kind == 'l' {
					if a, b := r2.resolve(spec[i].path, 0).kind, r.resolve(spec[i].path, 0).kind; a != b {
						t.Errorf("%s: %s in one order, %s in the other", spec[i].path, a.String(), b.String())
					}
				}
			}
			compareWithKernel(t, spec)
		})
	}
}

// randomTree draws a small tree whose links mix names that exist, "..",
// "." and the odd absolute target: enough for chains, loops and escapes.
func randomTree(rng *rand.Rand) string {
	names := []string{"a", "b", "c"}
	var paths []string
	var b strings.Builder
	randPath := func() string {
		depth := 1 + rng.IntN(3)
		parts := make([]string, depth)
		for i := range parts {
			parts[i] = names[rng.IntN(len(names))]
		}
		return strings.Join(parts, "/")
	}
	for range 4 + rng.IntN(10) {
		p := randPath()
		paths = append(paths, p)
		switch rng.IntN(4) {
		case 0:
			fmt.Fprintf(&b, "d %s\n", p)
		case 1:
			fmt.Fprintf(&b, "f %s\n", p)
		default:
			n := 1 + rng.IntN(5)
			comps := make([]string, n)
			for i := range comps {
				switch x := rng.IntN(10); {
				case x < 4:
					comps[i] = ".."
				case x == 4:
					comps[i] = "."
				default:
					comps[i] = names[rng.IntN(len(names))]
				}
			}
			target := strings.Join(comps, "/")
			switch rng.IntN(12) {
			case 0:
				target = "/" + target
			case 1:
				target += "/"
			}
			fmt.Fprintf(&b, "l %s %s\n", p, target)
		}
	}
	return b.String()
}

// TestResolveLinksAgainstKernel: on random trees, the resolver agrees with
// the kernel on every link.
func TestResolveLinksAgainstKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 3))
	n := 400
	if testing.Short() {
		n = 50
	}
	kinds := map[linkKind]int{}
	for i := range n {
		spec := parseTreeSpec(randomTree(rng))
		t.Run(fmt.Sprint(i), func(t *testing.T) { compareWithKernel(t, spec) })
		r := newLinkResolver(spec.nodes())
		for _, e := range spec {
			if e.kind == 'l' {
				kinds[r.resolve(e.path, 0).kind]++
			}
		}
	}
	// The generator must reach every verdict, or the comparison proves
	// little.
	for _, k := range []linkKind{linkInside, linkDangling, linkEscape, linkLoop} {
		if kinds[k] == 0 {
			t.Errorf("no random link resolved as %s: %v", k.String(), kinds)
		}
	}
}

// FuzzResolveLinks compares the resolver with the kernel on any tree.
func FuzzResolveLinks(f *testing.F) {
	for _, tc := range linkCases {
		f.Add(tc.tree)
	}
	f.Fuzz(func(t *testing.T, tree string) {
		spec := parseTreeSpec(tree)
		compareWithKernel(t, spec)
		// Every link gets a verdict, and a message exactly when refused.
		nodes := spec.nodes()
		r := newLinkResolver(nodes)
		var paths []string
		for p := range nodes {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			n := nodes[p]
			if n.Mode&fs.ModeSymlink == 0 {
				continue
			}
			k := r.resolve(p, 0).kind
			if msg := r.linkProblem(n); (msg != "") != (k == linkEscape || k == linkLoop || k == linkEmpty) {
				t.Errorf("%s: verdict %s, message %q", p, k.String(), msg)
			}
		}
	})
}
