package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/internal/cli/clitest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// TestMetalK8sInvocation runs the flags MetalK8s passed to mkisofs.
func TestMetalK8sInvocation(t *testing.T) {
	isoinfo := testenv.Need(t, "isoinfo")[0]
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "product.txt"), []byte("NAME=MetalK8s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "metalk8s.iso")
	var stdout, stderr bytes.Buffer
	args := []string{"-output", out, "-rock", "-joliet", "-joliet-long", "-full-iso9660-filenames",
		"-volid", "example-solution 1.0.0", "-iso-level", "3", "-gid", "0", "-uid", "0",
		"-input-charset", "utf-8", "-output-charset", "utf-8", "-implantisomd5", src}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	d, err := exec.Command(isoinfo, "-d", "-i", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Volume id: example-solution 1.0.0", "Rock Ridge", "Joliet"} {
		if !strings.Contains(string(d), s) {
			t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
		}
	}
	sums, err := os.ReadFile(filepath.Join(filepath.Dir(out), "SHA256SUM"))
	if err != nil || !strings.HasSuffix(string(sums), "  metalk8s.iso\n") {
		t.Errorf("SHA256SUM: %q, %v", sums, err)
	}
}

func TestErrors(t *testing.T) {
	src := t.TempDir()
	out := filepath.Join(t.TempDir(), "x.iso")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{src}, "-o is required"},
		{[]string{"-o", out}, "exactly one source directory"},
		{[]string{"-o", out, "-V", strings.Repeat("V", 33), src}, "at most 32"},
		{[]string{"-o", out, "-iso-level", "2", src}, "only level 3"},
		{[]string{"-o", out, "-input-charset", "iso8859-1", src}, "only utf-8"},
		{[]string{"-o", out, "-uid", "root", src}, "numeric"},
		{[]string{"-o", out, filepath.Join(src, "missing")}, "missing"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}

// TestMain lets the tests run mkiso as a real process (clitest).
func TestMain(m *testing.M) { clitest.TestMain(m, "mkiso", main) }

// mkiso returns a command running mkiso in its own process.
func mkiso(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := clitest.Command(t, args...)
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
	return cmd
}

// TestExitCodes: the Go convention. -h prints the usage on stderr and
// exits 0, a usage error exits 2, a failure to write the image exits 1.
func TestExitCodes(t *testing.T) {
	src := t.TempDir()
	out := filepath.Join(t.TempDir(), "x.iso")
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-h"}, 0, "usage: mkiso"},
		{[]string{"-help"}, 0, "usage: mkiso"},
		{[]string{"-no-such-flag", src}, 2, "flag provided but not defined"},
		{[]string{src}, 2, "-o is required"},
		{[]string{"-o", out}, 2, "exactly one source directory"},
		{[]string{"-o", out, "-iso-level", "2", src}, 2, "only level 3"},
		{[]string{"-o", out, "-uid", "root", src}, 2, "numeric"},
		{[]string{"-o", out, filepath.Join(src, "missing")}, 1, "missing"},
		{[]string{"-o", filepath.Join(src, "no", "dir", "x.iso"), src}, 1, "no such file"},
		{[]string{"-quiet", "-o", out, src}, 0, ""},
	} {
		cmd := mkiso(t, tc.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("mkiso %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
		if tc.code == 0 && tc.stderr != "" && stdout.Len() != 0 {
			t.Errorf("mkiso %v: usage on stdout: %q", tc.args, stdout.String())
		}
	}
}

// TestConcurrentRuns: mkiso processes writing images into one directory
// at the same time each leave their line in SHA256SUM, which sha256sum
// then verifies.
func TestConcurrentRuns(t *testing.T) {
	sha256sum := testenv.Need(t, "sha256sum")[0]
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "product.txt"), []byte("NAME=MetalK8s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const n = 8
	var cmds []*exec.Cmd
	for i := range n {
		cmd := mkiso(t, "-quiet", "-R", "-J", "-V", fmt.Sprintf("V%d", i), "-o", filepath.Join(dir, fmt.Sprintf("image-%d.iso", i)), src)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: %v", cmd.Args, err)
		}
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUM"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(string(sums), "\n"), "\n"); len(lines) != n {
		t.Fatalf("SHA256SUM holds %d lines, want %d:\n%s", len(lines), n, sums)
	}
	check := exec.Command(sha256sum, "-c", "--strict", "SHA256SUM")
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil || strings.Count(string(out), ": OK\n") != n {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != n+1 {
		t.Errorf("left in the directory: %v", entries)
	}
}

// TestKilledRun: a run killed with -9 in the middle of writing leaves its
// temporary file; the next run into the directory removes it. The source
// is a sparse file of 1 TiB: the image's digest reads it back, which takes
// minutes, while the kill comes as soon as the temporary file appears.
func TestKilledRun(t *testing.T) {
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		f.Close()
		t.Skipf("no sparse file of 1 TiB here: %v", err)
	}
	f.Close()
	dir := t.TempDir()
	cmd := mkiso(t, "-quiet", "-R", "-o", filepath.Join(dir, "x.iso"), src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
		return m
	}
	for len(temps()) == 0 {
		select {
		case err := <-exited:
			t.Fatalf("mkiso ended before its temporary file was seen: %v", err)
		case <-time.After(10 * time.Millisecond): // polling, not a deadline
		}
	}
	cmd.Process.Kill()
	<-exited
	left := temps()
	if len(left) == 0 {
		t.Fatal("the killed run left no temporary file: nothing to test")
	}

	small := t.TempDir()
	if err := os.WriteFile(filepath.Join(small, "a"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again := mkiso(t, "-quiet", "-R", "-o", filepath.Join(dir, "x.iso"), small)
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if left := temps(); len(left) != 0 {
		t.Fatalf("left after the next run: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.iso")); err != nil {
		t.Fatal(err)
	}
}

// TestOutputInSource: mkiso -o inside the source directory does not pack
// its previous image or SHA256SUM.
func TestOutputInSource(t *testing.T) {
	isoinfo := testenv.Need(t, "isoinfo")[0]
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "product.txt"), []byte("NAME=MetalK8s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(src, "metalk8s.iso")
	for range 2 {
		if b, err := mkiso(t, "-quiet", "-R", "-J", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
	}
	list, err := exec.Command(isoinfo, "-R", "-f", "-i", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(list) != "/product.txt\n" {
		t.Fatalf("the image holds:\n%s", list)
	}
}
