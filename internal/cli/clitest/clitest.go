// Package clitest runs a command's main in a process of its own, so that
// tests check the exit status os.Exit really gives.
package clitest

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

const runMainEnv = "CLI_TEST_RUN_MAIN"

// TestMain is called from a command's TestMain: when the test binary is
// re-executed by Run, it runs main as the command name instead of the tests.
func TestMain(m *testing.M, name string, main func()) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{name}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Command is the command with args, to run in a new process.
func Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	return cmd
}

// Run runs the command with args in a new process and returns its exit
// status and combined output.
func Run(t testing.TB, args ...string) (int, string) {
	t.Helper()
	out, err := Command(t, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// Case is a command line and the exit status the convention gives it.
type Case struct {
	Args []string
	Want int
}

// CheckExitStatus runs each case and checks its status; a status 0 must
// come with some output (the usage, for -h).
func CheckExitStatus(t *testing.T, cases []Case) {
	t.Helper()
	for _, c := range cases {
		code, out := Run(t, c.Args...)
		if code != c.Want {
			t.Errorf("%q: exit %d, want %d\n%s", c.Args, code, c.Want, out)
		}
		if c.Want == 0 && len(out) == 0 {
			t.Errorf("%q: no usage printed", c.Args)
		}
	}
}
