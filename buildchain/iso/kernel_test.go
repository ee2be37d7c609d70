package iso

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// TestKernelReadsISO boots Debian's kernel under qemu with the image as a
// CD-ROM: its isofs is the reader the installer uses on real nodes. Every
// entry of the Rock Ridge view must match the source tree (type, mode,
// size, sha256, link target, link count), and every entry of the Joliet
// view (mounted with norock) what our own reader says the Joliet tree
// holds.
func TestKernelReadsISO(t *testing.T) {
	testenv.Short(t, "boots a kernel under software emulation (about 15 s)")
	k := testenv.NeedKernel(t)

	src := t.TempDir()
	publishImages(t, src)
	makeCorpus(t, src, corpusOpts{many: 40, jolietCollide: true, deep: true})
	out := filepath.Join(t.TempDir(), "kernel.iso")
	buildISO(t, src, out, productOpts())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	// check=s: on a Joliet tree isofs defaults to check=relaxed, which
	// looks names up case-insensitively, so stat("case/Readme") finds
	// case/README. readdir lists both; strict lookups tell them apart.
	listings, console, err := k.ListISO(ctx, out, "ro", "ro,norock,check=s")
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console)
	}
	t.Logf("kernel %s: boot, two mounts and poweroff in %v", k.Version, time.Since(start).Round(time.Millisecond))

	rr, joliet := listings[0], listings[1]
	want := scan(t, src)
	got := map[string]entry{}
	for p, e := range rr.Entries {
		got[p] = entry{typ: e.Type, perm: e.Perm, size: e.Size, sum: e.SHA256, target: e.Target}
		if e.Type != 'f' {
			got[p] = entry{typ: e.Type, perm: e.Perm, target: e.Target}
		}
	}
	compareTrees(t, "the kernel's Rock Ridge view", want, got, false)
	// The kernel numbers inodes by directory record, so hard links show as
	// their PX link count only.
	for p, w := range want {
		if g, ok := rr.Entries[p]; ok && w.typ == 'f' && uint64(g.Nlink) != w.nlink {
			t.Errorf("kernel's Rock Ridge view: %s has %d links, want %d", p, g.Nlink, w.nlink)
		}
	}
	// Hole 4 of the previous issue: published directories were 0700, and
	// the kernel showed drwx------ on images/*/*.
	dirs, _ := filepath.Glob(filepath.Join(src, "images", "*", "*"))
	if len(dirs) == 0 {
		t.Fatal("no images/*/* in the source tree")
	}
	for _, d := range dirs {
		rel, _ := filepath.Rel(src, d)
		if g := rr.Entries[filepath.ToSlash(rel)]; g.Type != 'd' || g.Perm != 0o755 {
			t.Errorf("kernel shows %s as %c %v, want a drwxr-xr-x directory", rel, g.Type, g.Perm)
		}
	}

	f, err := os.Open(out)
	must(t, err)
	defer f.Close()
	fi, err := f.Stat()
	must(t, err)
	im, err := Open(f, fi.Size())
	must(t, err)
	jfs := im.JolietFS()
	if jfs == nil {
		t.Fatal("our reader finds no Joliet tree")
	}
	wantJ := jolietListing(t, jfs)
	if len(wantJ) < len(want)/2 {
		t.Fatalf("our reader's Joliet tree has %d entries, the source %d", len(wantJ), len(want))
	}
	var diffs []string
	for p, w := range wantJ {
		g, ok := joliet.Entries[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g.Type != w.typ:
			diffs = append(diffs, fmt.Sprintf("%s: type %c, want %c", p, g.Type, w.typ))
		case w.typ == 'f' && (g.Size != w.size || g.SHA256 != w.sum):
			diffs = append(diffs, fmt.Sprintf("%s: content differs (size %d, want %d)", p, g.Size, w.size))
		}
	}
	for p := range joliet.Entries {
		if _, ok := wantJ[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("the kernel's Joliet view disagrees with our reader's:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// publishImages lays out images/<name>/<version>/ the way the fetcher
// publishes them: filled in an fsutil.TempDir, renamed by PublishDir.
func publishImages(t *testing.T, root string) {
	t.Helper()
	for _, img := range []string{"kube-apiserver/v1.30.1", "metalk8s-ui/2.0.0"} {
		final := filepath.Join(root, "images", filepath.FromSlash(img))
		tmp, err := fsutil.TempDir(final)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(tmp, "manifest.json"), []byte(`{"schemaVersion":2}`), 0o600))
		must(t, os.WriteFile(filepath.Join(tmp, "version"), []byte("Directory Transport Version: 1.1\n"), 0o600))
		must(t, fsutil.PublishDir(tmp, final))
	}
}

// jolietListing walks fsys (our reader's Joliet tree) into entries.
func jolietListing(t *testing.T, fsys *FS) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	must(t, fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		switch {
		case d.IsDir():
			out[p] = entry{typ: 'd'}
		case d.Type()&fs.ModeSymlink != 0:
			out[p] = entry{typ: 'l'}
		default:
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			out[p] = entry{typ: 'f', size: n, sum: hex.EncodeToString(h.Sum(nil))}
		}
		return nil
	}))
	return out
}
