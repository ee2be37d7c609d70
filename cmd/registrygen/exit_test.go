package main

import (
	"path/filepath"
	"testing"

	"github.com/metalk8s/buildchain/internal/cli/clitest"
)

func TestMain(m *testing.M) { clitest.TestMain(m, "registrygen", main) }

// The Go convention: -h and -help print the usage and exit 0; a wrong
// command line exits 2; a failure at run time exits 1.
func TestExitStatus(t *testing.T) {
	clitest.CheckExitStatus(t, exitCases(filepath.Join(t.TempDir(), "missing")))
}

func exitCases(missing string) []clitest.Case {
	return []clitest.Case{
		{Args: []string{"-h"}, Want: 0},
		{Args: []string{"-help"}, Want: 0},
		{Args: []string{"--help"}, Want: 0},
		{Args: []string{"serve", "-h"}, Want: 0},
		{Args: []string{"--bogus"}, Want: 2},
		{Args: []string{"serve", "--bogus"}, Want: 2},
		{Args: []string{"--omit-constants", "--only-constants"}, Want: 2},
		{Args: []string{"--server-root", "/srv", "a", "b"}, Want: 2},
		{Args: []string{"--server-root", "/srv", missing}, Want: 1},
		{Args: []string{"serve", "--listen", "127.0.0.1:99999", missing}, Want: 1},
	}
}
