package targets

import (
	"os"
	"strings"
)

// DryRunArgs turns `clean -n` (any clean target, -n before or after it)
// into DRY_RUN=1, since mage has no per-target flags and would take -n for
// a target. It returns the arguments without -n; other commands keep it.
func DryRunArgs(args []string) []string {
	clean := false
	for _, a := range args {
		if strings.HasPrefix(strings.ToLower(a), "clean") {
			clean = true
		}
	}
	if !clean {
		return args
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a == "-n" || a == "--dry-run" {
			os.Setenv("DRY_RUN", "1")
			continue
		}
		out = append(out, a)
	}
	return out
}
