package main

import (
	"path/filepath"
	"testing"

	"github.com/metalk8s/buildchain/internal/cli/clitest"
)

func TestMain(m *testing.M) { clitest.TestMain(m, "repogen", main) }

// The Go convention: -h and -help print the usage and exit 0; a wrong
// command line exits 2; a failure at run time exits 1.
func TestExitStatus(t *testing.T) {
	clitest.CheckExitStatus(t, exitCases(filepath.Join(t.TempDir(), "missing")))
}

func exitCases(missing string) []clitest.Case {
	return []clitest.Case{
		{Args: []string{"-h"}, Want: 0},
		{Args: []string{"-help"}, Want: 0},
		{Args: []string{"--bogus", "dir"}, Want: 2},
		{Args: []string{}, Want: 2},
		{Args: []string{"a", "b"}, Want: 2},
		{Args: []string{"--workers", "many", "dir"}, Want: 2},
		{Args: []string{missing}, Want: 1},
	}
}
