// Package hostdeps installs the Debian packages that the tests and the
// benchmarks run against, so that a fresh machine needs nothing but Go.
package hostdeps

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// TestPackages are the real programs the test suite checks our outputs
// with: readers and clients of every format the buildchain writes.
var TestPackages = []string{
	"nginx-light",        // serves the generated registry config and yum repos
	"skopeo",             // reference reader of the dir: layout, pull client
	"docker-registry",    // the Distribution registry, stands in for upstreams
	"containerd",         // ctr as a pull client
	"podman",             // pull client
	"xorriso",            // ISO reader and peer
	"genisoimage",        // isoinfo, and the mkisofs peer
	"libarchive-tools",   // bsdtar
	"p7zip-full",         // 7z
	"fuseiso",            // mounts ISOs without kernel support
	"systemd",            // systemd-analyze verify and systemd-escape check the installer's mount units
	"isomd5sum",          // checkisomd5
	"rpm",                // rpmbuild, rpmkeys, rpmsign
	"createrepo-c",       // the repodata oracle
	"dnf",                // the yum client
	"gnupg",              // signing fixtures
	"python3-jinja2",     // renders registry-config.inc.j2 as MetalK8s does
	"python3-jsonschema", // checks the SBOM against the CycloneDX schema
	"uidmap",             // podman's rootless helpers are looked up even as root
	"fuse-overlayfs",
	"linux-image-amd64", // the kernel that mounts ISOs under qemu (its isofs is the installer's reader)
	"qemu-system-x86",   // qemu-system-x86_64, software emulation
	"busybox-static",    // the qemu guest's only program
	"xz-utils",          // unpacks the kernel once so qemu boots it without its xz decompressor
	"vagrant",           // vagrant validate on vagrant/Vagrantfile, and vagrant:up's plugin check
	"shellcheck",        // vagrant/provision/*.sh
	"wrk",               // benchmarks: HTTP load
	"hyperfine",         // benchmarks: timing whole commands
	"time",              // /usr/bin/time -v for peak RSS
	"systemd",           // systemd-analyze verify of the repository service unit
	"etcd-server",       // the store behind the kube-apiserver the installer deploys Solutions to
}

// Missing returns the packages of pkgs that dpkg does not report installed.
func Missing(ctx context.Context, pkgs []string) ([]string, error) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return nil, fmt.Errorf("dpkg-query not found: the test dependencies are Debian packages, install them by hand: %s", strings.Join(pkgs, " "))
	}
	var missing []string
	for _, p := range pkgs {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), " installed") {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// Ensure installs whatever of pkgs is missing with apt-get.
func Ensure(ctx context.Context, pkgs []string, log io.Writer) error {
	missing, err := Missing(ctx, pkgs)
	if err != nil || len(missing) == 0 {
		return err
	}
	fmt.Fprintf(log, "installing Debian packages: %s\n", strings.Join(missing, " "))
	run := func(args ...string) error {
		if os.Geteuid() != 0 {
			if _, err := exec.LookPath("sudo"); err == nil {
				args = append([]string{"sudo", "-n"}, args...)
			}
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	if err := run("apt-get", "update"); err != nil {
		return err
	}
	return run(append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, missing...)...)
}
