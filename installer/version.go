package installer

import (
	"runtime"
	"runtime/debug"
)

// version is the MetalK8s version this installer ships with. The build
// links with fixed flags (gobin.Flags, for reproducible binaries), and
// the VERSION file lies outside every package, where go:embed cannot
// reach: TestVersionMatchesVERSIONFile keeps the two equal. A packager
// may still set it with -ldflags "-X
// github.com/metalk8s/buildchain/installer.version=...".
var version = "2.0.0-dev"

// Version is the installer's version line: its version, and what the Go
// build recorded (toolchain, platform, VCS revision when stamped).
func Version() string {
	s := "metalk8s-installer " + version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				s += ", revision " + kv.Value
			}
			if kv.Key == "vcs.modified" && kv.Value == "true" {
				s += "-dirty"
			}
		}
	}
	return s + ")"
}
