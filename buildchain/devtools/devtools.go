// Package devtools implements the developer targets: lint and test.
package devtools

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/hostdeps"
	"github.com/metalk8s/buildchain/internal/kubebuild"
)

func command(ctx context.Context, dir string, out io.Writer, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	return cmd
}

// Lint fails if gofmt would change a file or go vet reports anything.
func Lint(ctx context.Context, dir string, out io.Writer) error {
	var buf bytes.Buffer
	cmd := command(ctx, dir, &buf, "gofmt", "-l", ".")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gofmt: %w\n%s", err, buf.String())
	}
	if files := strings.TrimSpace(buf.String()); files != "" {
		return fmt.Errorf("gofmt would reformat:\n%s", files)
	}
	fmt.Fprintln(out, "gofmt: clean")
	if err := command(ctx, dir, out, "go", "vet", "./...").Run(); err != nil {
		return fmt.Errorf("go vet: %w", err)
	}
	fmt.Fprintln(out, "go vet: clean")
	return nil
}

// Test installs the Debian packages the tests run against, then runs the
// whole suite with the race detector. CI=true makes a missing program fail
// its tests instead of skipping them (see internal/testenv).
func Test(ctx context.Context, dir string, out io.Writer) error {
	// The kube-apiserver the installer's tests talk to is built from
	// source (minutes when cold) while apt-get installs, so neither waits
	// for the other and no test pays for the build under its timeout.
	kube := make(chan error, 1)
	go func() {
		tools, err := kubebuild.FindTools(dir)
		if err == nil {
			_, err = kubebuild.Binary(ctx, tools, out)
		}
		kube <- err
	}()
	if err := hostdeps.Ensure(ctx, hostdeps.TestPackages, out); err != nil {
		return err
	}
	if err := <-kube; err != nil {
		return err
	}
	args := []string{"test", "-race", "-timeout", "25m"}
	if v := os.Getenv("TESTFLAGS"); v != "" {
		args = append(args, strings.Fields(v)...)
	}
	args = append(args, "./...")
	cmd := command(ctx, dir, out, "go", args...)
	cmd.Env = append(os.Environ(), "METALK8S_REQUIRE_TOOLS=1")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test: %w", err)
	}
	return nil
}
