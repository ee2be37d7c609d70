package demo_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// checkKernel boots Debian's kernel under qemu with the demo ISO as a
// CD-ROM, the reader the installer relies on on a node, mounts it with
// Rock Ridge and then with Joliet only, and holds what the guest kernel
// reads (each file's size and SHA-256, computed in the guest) to the
// in-ISO manifest: every listed file as listed, and no regular file that
// the manifest does not list but the manifest and its signature.
func checkKernel(t *testing.T, e *e2eISO) {
	k := testenv.NeedKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	listings, console, err := k.ListISO(ctx, e.path, "ro", "ro,norock")
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console)
	}
	for _, l := range listings {
		if diffs := againstManifest(e.manifest, l.Entries); len(diffs) > 0 {
			t.Errorf("kernel %s, mount -o %s, against the in-ISO manifest:\n  %s", k.Version, l.Options, strings.Join(diffs, "\n  "))
		}
	}
}

// againstManifest lists how what the guest read differs from the manifest.
func againstManifest(manifest []isomanifest.Entry, got map[string]testenv.GuestEntry) []string {
	var diffs []string
	listed := map[string]bool{}
	for _, m := range manifest {
		listed[m.Path] = true
		g, ok := got[m.Path]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+m.Path)
		case g.Type != 'f':
			diffs = append(diffs, fmt.Sprintf("%s: type %c, want a regular file", m.Path, g.Type))
		case g.Size != m.Size:
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes, the manifest says %d", m.Path, g.Size, m.Size))
		case g.SHA256 != m.SHA256:
			diffs = append(diffs, fmt.Sprintf("%s: sha256 %s, the manifest says %s", m.Path, g.SHA256, m.SHA256))
		}
	}
	for p, g := range got {
		if g.Type != 'd' && !listed[p] && !isomanifest.Excluded(p) {
			diffs = append(diffs, fmt.Sprintf("%s (%c): not in the manifest", p, g.Type))
		}
	}
	for _, p := range []string{isomanifest.Name, isomanifest.SignatureName} {
		if g, ok := got[p]; !ok || g.Type != 'f' {
			diffs = append(diffs, "missing "+p)
		}
	}
	sort.Strings(diffs)
	return diffs
}
