// Package testenv gives tests access to the real programs the buildchain is
// checked against (skopeo, nginx, docker-registry, xorriso, ...).
//
// A missing program skips the test on a developer machine, but fails it when
// CI=true or METALK8S_REQUIRE_TOOLS=1: CI must never pass by skipping the
// very checks that matter. `go run mage.go test` installs all of them.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing tools must fail tests instead of skipping them.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("METALK8S_REQUIRE_TOOLS") == "1"
}

// Need returns the absolute path of each named program, in order. A missing
// program skips the test, or fails it when Required.
func Need(t testing.TB, programs ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(programs))
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			if Required() {
				t.Fatalf("required program %q is not installed (run `go run mage.go test`, which installs it)", p)
			}
			t.Skipf("program %q is not installed; `go run mage.go test` installs it", p)
		}
		paths = append(paths, path)
	}
	return paths
}

// Short skips long tests under -short.
func Short(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: " + why)
	}
}
