package iso

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// testEpoch is SOURCE_DATE_EPOCH for the tests; corpus mtimes are set
// before it so that genisoimage (which ignores the epoch) and mkiso agree.
var (
	testEpoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	oldMtime  = time.Date(2023, 6, 7, 8, 9, 10, 0, time.UTC)
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, p string, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
	must(t, os.Chmod(p, mode))
}

func nameOf(n int, ext string) string {
	s := ""
	for i := 0; len(s) < n-len(ext); i++ {
		s += string(rune('a' + i%26))
	}
	return s[:n-len(ext)] + ext
}

type corpusOpts struct {
	many          int  // small files
	jolietCollide bool // names equal in their first 103 characters
	deep          bool
}

// makeCorpus builds the source tree the readers are compared against.
func makeCorpus(t testing.TB, root string, o corpusOpts) {
	t.Helper()
	w := func(rel, content string) { writeFile(t, filepath.Join(root, rel), content, 0o644) }
	w("PRODUCT.TXT", "NAME=MetalK8s\nVERSION=2.0.0\n")
	w("utf8/café.txt", "café\n")
	w("utf8/日本語のファイル名.txt", "nihongo\n")
	w("utf8/Ünïcödé dir/x", "x\n")
	w("utf8/emoji 😀 name.txt", "smile\n")
	for _, n := range []int{30, 31, 32, 64, 103, 200} {
		// Distinct prefixes: names must not collide when cut to 103.
		p := fmt.Sprintf("n%03d-", n)
		w("lengths/"+p+nameOf(n-len(p), ""), fmt.Sprintf("plain %d\n", n))
		w("lengths/e"+p+nameOf(n-len(p)-1, ".tar.gz"), fmt.Sprintf("ext %d\n", n))
		must(t, os.MkdirAll(filepath.Join(root, "lengths", "d"+p+nameOf(n-len(p)-1, "")), 0o755))
	}
	w("case/Readme", "1\n")
	w("case/README", "22\n")
	w("case/readme.TXT", "333\n")
	w("case/README.txt", "4444\n")
	w("collide/a-long-common-prefix-for-iso-names-1.txt", "c1\n")
	w("collide/a-long-common-prefix-for-iso-names-2.txt", "c2\n")
	w("collide/a-long-common-prefix-for-iso-names-3.txt", "c3\n")
	w("collide/x.y.z", "dots\n")
	w("collide/x_y.z", "underscore\n")
	if o.jolietCollide {
		w("collide/"+nameOf(110, "")+"-one", "j1\n")
		w("collide/"+nameOf(110, "")+"-two", "j2\n")
	}
	if o.deep {
		deep := "deep"
		for i := 1; i <= 12; i++ {
			deep = filepath.Join(deep, fmt.Sprintf("level%02d", i))
		}
		w(filepath.Join(deep, "leaf.txt"), "deep leaf\n")
	}
	w("links/target.txt", "target\n")
	for name, target := range map[string]string{
		"rel":        "target.txt",
		"up":         "../PRODUCT.TXT",
		"abs":        "/etc/hostname",
		"dangling":   "does/not/exist",
		"dot":        "./target.txt",
		"multi":      "../utf8/./café.txt",
		"longtarget": strings.Repeat("segment/", 40) + "end",
		"longcomp":   strings.Repeat("c", 250) + "/x",
		"loop1":      "loop2",
		"loop2":      "loop1",
		"dirlink":    "../case",
	} {
		must(t, os.Symlink(target, filepath.Join(root, "links", name)))
	}
	w("hard/a.bin", strings.Repeat("hard link content\n", 100))
	must(t, os.Link(filepath.Join(root, "hard/a.bin"), filepath.Join(root, "hard/b.bin")))
	must(t, os.Link(filepath.Join(root, "hard/a.bin"), filepath.Join(root, "links/hard-c.bin")))
	w("dup/one.bin", strings.Repeat("same content\n", 1000))
	w("dup/two.bin", strings.Repeat("same content\n", 1000))
	w("dup/three.bin", strings.Repeat("SAME CONTENT\n", 1000))
	w("empty/emptyfile", "")
	w("empty/another-empty", "")
	must(t, os.MkdirAll(filepath.Join(root, "empty/emptydir"), 0o755))
	writeFile(t, filepath.Join(root, "modes/exec.sh"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(root, "modes/private"), "secret\n", 0o600)
	must(t, os.MkdirAll(filepath.Join(root, "modes/closed"), 0o700))
	must(t, os.Chmod(filepath.Join(root, "modes/closed"), 0o700))
	for i := 0; i < o.many; i++ {
		content := fmt.Sprintf("small file %d\n", i%(o.many/2+1))
		w(fmt.Sprintf("many/d%02d/f%05d.txt", i/1000, i), content)
	}
	setTimes(t, root)
}

// setTimes gives every entry the same old mtime (symlinks included), so
// listings from different writers can be compared.
func setTimes(t testing.TB, root string) {
	t.Helper()
	ts := []syscall.Timespec{syscall.NsecToTimespec(oldMtime.UnixNano()), syscall.NsecToTimespec(oldMtime.UnixNano())}
	var paths []string
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- { // children before parents
		must(t, utimensat(paths[i], ts))
	}
}

// utimensat sets times without following symlinks (dangling ones too).
func utimensat(p string, ts []syscall.Timespec) error {
	const atSymlinkNoFollow = 0x100
	atFDCWD := -100
	b, err := syscall.BytePtrFromString(p)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(b)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNoFollow, 0, 0)
	if errno != 0 {
		return &os.PathError{Op: "utimensat", Path: p, Err: errno}
	}
	return nil
}

// entry is what the oracle knows about a path.
type entry struct {
	typ    byte // f d l
	perm   os.FileMode
	size   int64
	sum    string
	target string
	ino    uint64
	nlink  uint64
}

func scan(t testing.TB, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{perm: fi.Mode().Perm(), ino: st.Ino, nlink: uint64(st.Nlink)}
		switch {
		case fi.IsDir():
			e.typ = 'd'
		case fi.Mode()&fs.ModeSymlink != 0:
			e.typ = 'l'
			e.target, _ = os.Readlink(p)
		default:
			e.typ = 'f'
			e.size = fi.Size()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			e.sum = hex.EncodeToString(s[:])
		}
		out[rel] = e
		return nil
	}))
	return out
}

// linkGroups is the partition of regular files into hard-link groups.
func linkGroups(m map[string]entry) []string {
	groups := map[uint64][]string{}
	for p, e := range m {
		if e.typ == 'f' {
			groups[e.ino] = append(groups[e.ino], p)
		}
	}
	var out []string
	for _, g := range groups {
		if len(g) > 1 {
			sort.Strings(g)
			out = append(out, strings.Join(g, "|"))
		}
	}
	sort.Strings(out)
	return out
}

func compareTrees(t *testing.T, reader string, want, got map[string]entry, checkLinks bool) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case w.typ != g.typ:
			diffs = append(diffs, fmt.Sprintf("%s: type %c, want %c", p, g.typ, w.typ))
		case w.typ != 'l' && w.perm != g.perm:
			diffs = append(diffs, fmt.Sprintf("%s: mode %v, want %v", p, g.perm, w.perm))
		case w.typ == 'f' && (w.size != g.size || w.sum != g.sum):
			diffs = append(diffs, fmt.Sprintf("%s: content differs (size %d, want %d)", p, g.size, w.size))
		case w.typ == 'l' && w.target != g.target:
			diffs = append(diffs, fmt.Sprintf("%s: target %q, want %q", p, g.target, w.target))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	if checkLinks {
		if w, g := linkGroups(want), linkGroups(got); strings.Join(w, " ") != strings.Join(g, " ") {
			diffs = append(diffs, fmt.Sprintf("hard links %v, want %v", g, w))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	if len(diffs) > 0 {
		t.Errorf("%s disagrees with the source tree:\n  %s", reader, strings.Join(diffs, "\n  "))
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String()
}

func buildISO(t testing.TB, src, out string, opts Options) *Result {
	t.Helper()
	if opts.Epoch.IsZero() {
		opts.Epoch = testEpoch
	}
	res, err := Write(context.Background(), out, src, opts)
	must(t, err)
	return res
}

func productOpts() Options {
	zero := uint32(0)
	return Options{VolumeID: "MetalK8s 2.0.0", RockRidge: true, Joliet: true, JolietLong: true, UID: &zero, GID: &zero}
}
