package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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

// TestMain lets the tests run mkiso as a real process: the test binary
// re-executed with MKISO_TEST_MAIN=1 is mkiso.
func TestMain(m *testing.M) {
	if os.Getenv("MKISO_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// mkiso returns a command running mkiso in its own process.
func mkiso(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "MKISO_TEST_MAIN=1", "SOURCE_DATE_EPOCH=1700000000")
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
