//go:build ignore

// Zero-install entry point: `go run mage.go <target>` builds and runs the
// magefile without a mage binary on the machine.
package main

import (
	"os"

	"github.com/magefile/mage/mage"

	"github.com/metalk8s/buildchain/buildchain/targets"
)

func main() {
	os.Args = targets.DryRunArgs(os.Args)
	os.Exit(mage.Main())
}
