package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMain runs main itself when re-executed by exitStatus, so that the
// exit status checked is the one os.Exit gives.
func TestMain(m *testing.M) {
	if os.Getenv("CLI_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"solution"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// exitStatus runs the command with args in a new process and returns its
// exit status and output.
func exitStatus(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CLI_TEST_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The Go convention: -h and -help print the usage and exit 0; a wrong
// command line exits 2; a failure at run time exits 1.
func TestExitStatus(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range exitCases(missing) {
		code, out := exitStatus(t, c.args...)
		if code != c.want {
			t.Errorf("%q: exit %d, want %d\n%s", c.args, code, c.want, out)
		}
		if c.want == 0 && len(out) == 0 {
			t.Errorf("%q: no usage printed", c.args)
		}
	}
}

type exitCase struct {
	args []string
	want int
}

func exitCases(missing string) []exitCase {
	return []exitCase{
		{[]string{"-h"}, 0},
		{[]string{"-help"}, 0},
		{[]string{"help"}, 0},
		{[]string{"build", "-h"}, 0},
		{[]string{"validate", "-help"}, 0},
		{[]string{"inspect", "-h"}, 0},
		{[]string{}, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{"validate"}, 2},
		{[]string{"validate", "a", "b"}, 2},
		{[]string{"build", "--nope", "src"}, 2},
		{[]string{"validate", missing}, 1},
		{[]string{"inspect", missing}, 1},
		{[]string{"build", "-o", missing + ".iso", missing}, 1},
	}
}
