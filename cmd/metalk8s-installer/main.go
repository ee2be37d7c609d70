// Command metalk8s-installer verifies, mounts, serves and deploys MetalK8s
// and Solution archives on a node: the program behind the ISO's
// bootstrap.sh, iso-manager.sh and solution-manager.sh. See
// docs/installer.md and `metalk8s-installer -h`.
package main

import "github.com/metalk8s/buildchain/installer"

func main() { installer.Main(wire) }

// wire makes the pieces of one run. The packages that verify, mount,
// serve and deploy are plugged in here as they land; until then the
// commands that need one fail, naming it.
func wire(installer.Env) (installer.Pieces, error) {
	return installer.Pieces{}, nil
}
