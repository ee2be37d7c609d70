package iso

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSHA256SUMConcurrent: writers updating one SHA256SUM at the same
// time, each from its own goroutine (and so its own lock descriptor), all
// keep their line, and the file stays well-formed, 0644, with no
// temporary or lock file left. Without the lock, read-modify-write cycles
// overlap and lines are lost.
func TestSHA256SUMConcurrent(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "SHA256SUM")
	must(t, os.WriteFile(f, []byte("not a sum line, kept\n"), 0o600))
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Twice each: the second replaces the first.
			errs[i] = UpdateSHA256SUM(f, fmt.Sprintf("image-%02d.iso", i), strings.Repeat("0", 64))
			if errs[i] == nil {
				errs[i] = UpdateSHA256SUM(f, fmt.Sprintf("image-%02d.iso", i), fmt.Sprintf("%064x", i))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	checkSums(t, dir, n, func(i int) string { return fmt.Sprintf("%064x", i) })
}

// checkSums checks that dir/SHA256SUM holds the kept line, then exactly
// one line per image-NN.iso with the digest sum(NN), and nothing else.
func checkSums(t *testing.T, dir string, n int, sum func(int) string) {
	t.Helper()
	f := filepath.Join(dir, "SHA256SUM")
	b, err := os.ReadFile(f)
	must(t, err)
	lines := strings.Split(string(b), "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("SHA256SUM does not end with a newline: %q", b)
	}
	lines = lines[:len(lines)-1]
	if len(lines) != n+1 || lines[0] != "not a sum line, kept" {
		t.Fatalf("SHA256SUM has %d lines, want %d:\n%s", len(lines), n+1, b)
	}
	seen := map[string]bool{}
	for _, line := range lines[1:] {
		s, name, ok := parseSumLine(line)
		var i int
		if _, err := fmt.Sscanf(name, "image-%02d.iso", &i); !ok || err != nil || seen[name] || s != sum(i) {
			t.Fatalf("line %q: bad, repeated or wrong digest\n%s", line, b)
		}
		seen[name] = true
	}
	fi, err := os.Stat(f)
	must(t, err)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("SHA256SUM mode %v, want 0644", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "SHA256SUM" && !strings.HasPrefix(e.Name(), "image-") {
			t.Errorf("left in the directory: %s", e.Name())
		}
	}
}

// TestWriteFileConcurrent: images written side by side into one
// directory all get their line, and each line is their image's digest.
func TestWriteFileConcurrent(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a"), "a\n", 0o644)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "SHA256SUM"), []byte("not a sum line, kept\n"), 0o644))
	const n = 8
	sums := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := productOpts()
			opts.Epoch = testEpoch
			opts.VolumeID = fmt.Sprintf("V%d", i) // a digest of its own
			res, err := Write(t.Context(), filepath.Join(dir, fmt.Sprintf("image-%02d.iso", i)), src, opts)
			if errs[i] = err; err == nil {
				sums[i] = res.SHA256
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	checkSums(t, dir, n, func(i int) string { return sums[i] })
}
