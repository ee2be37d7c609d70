// Command metalk8s-installer verifies, mounts, serves and deploys MetalK8s
// and Solution archives on a node: the program behind the ISO's
// bootstrap.sh, iso-manager.sh and solution-manager.sh. See
// docs/installer.md and `metalk8s-installer -h`.
package main

import "github.com/metalk8s/buildchain/installer"

func main() { installer.Main(installer.Real) }
