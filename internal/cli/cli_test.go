package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err    error
		code   int
		stderr string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{fmt.Errorf("sub: %w", flag.ErrHelp), 0, ""},
		{FlagError(errors.New("flag provided but not defined: -x")), 2, ""},
		{FlagError(flag.ErrHelp), 0, ""},
		{Usagef("-o is required"), 2, "tool: -o is required\n"},
		{fmt.Errorf("wrapped: %w", Usagef("no command")), 2, "tool: wrapped: no command\n"},
		{fmt.Errorf("the archive has problems: %w", ErrSilent), 1, ""},
		{errors.New("open x: no such file"), 1, "tool: open x: no such file\n"},
	} {
		var stderr bytes.Buffer
		if code := ExitCode("tool", c.err, &stderr); code != c.code || stderr.String() != c.stderr {
			t.Errorf("ExitCode(%v) = %d, %q; want %d, %q", c.err, code, stderr.String(), c.code, c.stderr)
		}
	}
}
