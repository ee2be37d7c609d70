// Package cli is what every command under cmd/ shares: the Go convention
// for exit statuses, so that scripts and CI read them alike whatever the
// tool. -h and -help print the usage and exit 0; a command line the tool
// cannot run exits 2, as the flag package does; a failure at run time
// exits 1.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// UsageError is a command line the tool cannot run: exit status 2.
type UsageError struct {
	Err error // nil when the flag package has already said what is wrong
}

func (e UsageError) Error() string {
	if e.Err == nil {
		return "bad command line"
	}
	return e.Err.Error()
}

func (e UsageError) Unwrap() error { return e.Err }

// Usagef is a UsageError with a message.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// FlagError wraps an error of flag.FlagSet.Parse: flag.ErrHelp stays itself
// (exit 0), anything else becomes a UsageError whose message the flag
// package has already printed.
func FlagError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return UsageError{}
}

// ErrSilent fails with exit status 1 without a message: the command has
// already reported what went wrong (a validation report, say).
var ErrSilent = errors.New("failed")

// ExitCode reports err on stderr, prefixed by the command's name, and
// returns the exit status the convention gives it.
func ExitCode(name string, err error, stderr io.Writer) int {
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrSilent):
		return 1
	case errors.As(err, &ue):
		if ue.Err != nil {
			fmt.Fprintln(stderr, name+":", err)
		}
		return 2
	}
	fmt.Fprintln(stderr, name+":", err)
	return 1
}

// Main runs a command with a context that ends on SIGINT or SIGTERM, and
// exits with the status ExitCode gives its error.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(name, err, os.Stderr))
}
