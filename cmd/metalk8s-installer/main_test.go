package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/installertest"
	"github.com/metalk8s/buildchain/internal/cli/clitest"
)

// fakesEnv makes the re-executed test binary wire the stand-ins of
// installertest instead of the (not yet landed) real pieces.
const fakesEnv = "INSTALLER_TEST_FAKES"

func TestMain(m *testing.M) {
	clitest.TestMain(m, installer.Name, func() {
		if os.Getenv(fakesEnv) == "1" {
			installer.Main(installertest.Wire)
			return
		}
		main()
	})
}

func TestExitStatus(t *testing.T) {
	root := t.TempDir()
	clitest.CheckExitStatus(t, []clitest.Case{
		{Args: []string{"-h"}, Want: 0},
		{Args: []string{"--help"}, Want: 0},
		{Args: []string{"help"}, Want: 0},
		{Args: []string{"version"}, Want: 0},
		{Args: []string{"archive", "add", "--help"}, Want: 0},
		{Args: []string{}, Want: 2},
		{Args: []string{"frobnicate"}, Want: 2},
		{Args: []string{"archive"}, Want: 2},
		{Args: []string{"archive", "add"}, Want: 2},
		{Args: []string{"solution", "remove", "a", "b"}, Want: 2},
		{Args: []string{"--nope", "serve"}, Want: 2},
		{Args: []string{"serve", "--listen", "nope"}, Want: 2},
		{Args: []string{"--root", root, "archive", "add", "/nonexistent.iso"}, Want: 1},
		{Args: []string{"--mount-method", "floppy", "serve"}, Want: 2},
		{Args: []string{"fuse-serve", "x"}, Want: 2},
		{Args: []string{"--root", filepath.Join(root, "missing"), "serve"}, Want: 1},
	})
	code, out := clitest.Run(t, "--root", root, "solution", "add", "/nonexistent.iso")
	if code != 1 || !strings.Contains(out, "/nonexistent.iso") {
		t.Errorf("solution add of a missing ISO: %d %s", code, out)
	}
	code, out = clitest.Run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "metalk8s-installer 2.") {
		t.Errorf("version: %d %q", code, out)
	}
}

func fakes(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	c := clitest.Command(t, args...)
	c.Env = append(c.Env, fakesEnv+"=1")
	return c
}

func runFakes(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	c := fakes(t, args...)
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// A run that holds the lock makes a second one with --no-wait fail at
// once naming its pid, and a third one without it wait, then run.
func TestLockTwoProcesses(t *testing.T) {
	root := t.TempDir()
	iso := filepath.Join(t.TempDir(), "mk")
	if err := installertest.WriteArchive(iso, "MetalK8s", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	holder := fakes(t, "--root", root, "archive", "add", iso)
	holder.Env = append(holder.Env, installertest.BlockEnv+"="+fifo)
	hout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var herr strings.Builder
	holder.Stderr = &herr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
		}
	}
	t.Cleanup(func() { release(); holder.Wait() })
	hsc := bufio.NewScanner(hout)
	if !hsc.Scan() || hsc.Text() != installertest.BlockMessage {
		t.Fatalf("holder said %q before holding the lock", hsc.Text())
	}

	code, _, stderr := runFakes(t, "--no-wait", "--root", root, "serve")
	pid := strconv.Itoa(holder.Process.Pid)
	if code != 1 || !strings.Contains(stderr, "(pid "+pid+")") || !strings.Contains(stderr, "--no-wait") {
		t.Fatalf("--no-wait while locked: exit %d\n%s", code, stderr)
	}

	waiter := fakes(t, "--root", root, "archive", "add", iso)
	werr, err := waiter.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var wout strings.Builder
	waiter.Stdout = &wout
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	wsc := bufio.NewScanner(werr)
	if !wsc.Scan() || !strings.Contains(wsc.Text(), "waiting for the lock") || !strings.Contains(wsc.Text(), "pid "+pid) {
		t.Fatalf("waiter said %q", wsc.Text())
	}
	// The waiter is blocked on the lock now; the holder finishes.
	release()
	rest, _ := io.ReadAll(werr)
	if err := waiter.Wait(); err != nil {
		t.Fatalf("waiter: %v\n%s", err, rest)
	}
	hrest, _ := io.ReadAll(hout)
	if err := holder.Wait(); err != nil {
		t.Fatalf("holder: %v\n%s%s", err, hrest, herr.String())
	}
	// The holder added the archive; the waiter, run after it, found
	// everything in place.
	if !strings.Contains(string(hrest), "added     file /etc/systemd/system/fake-metalk8s-2.0.0.mount") {
		t.Errorf("holder report:\n%s", hrest)
	}
	if !strings.Contains(wout.String(), "no changes") {
		t.Errorf("waiter ran before the holder was done:\n%s", wout.String())
	}
	if _, err := os.Stat(filepath.Join(root, installer.LockPath)); !os.IsNotExist(err) {
		t.Errorf("lock file left: %v", err)
	}
}

func TestDryRunAndLogInProcesses(t *testing.T) {
	root := t.TempDir()
	iso := filepath.Join(t.TempDir(), "ex")
	if err := installertest.WriteArchive(iso, "example-solution", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runFakes(t, "solution", "add", iso, "--root", root, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "would be added") {
		t.Fatalf("dry run: %d\n%s%s", code, stdout, stderr)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("dry run wrote %v under the root", ents)
	}
	code, stdout, stderr = runFakes(t, "--root", root, "solution", "add", iso)
	if code != 0 {
		t.Fatalf("solution add: %d\n%s", code, stderr)
	}
	log, err := os.ReadFile(filepath.Join(root, installer.DefaultLogPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"metalk8s-installer --root " + root + " solution add " + iso, "added file /var/lib/metalk8s/installer/manifests/example-solution-1.0.0/deployed"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// A failing run exits 1 and says it rolled back.
	bad := filepath.Join(t.TempDir(), "bad")
	installertest.WriteArchive(bad, "example-solution", "2.0.0", "deploy")
	code, _, stderr = runFakes(t, "--root", root, "solution", "add", bad)
	if code != 1 || !strings.Contains(stderr, "metalk8s-installer: solution add: applying the CRDs: forbidden (fake)") || !strings.Contains(stderr, "every change was rolled back") {
		t.Fatalf("failing deploy: %d\n%s", code, stderr)
	}
}
