// Package vagrant spawns a MetalK8s Bootstrap VM from the built ISO with the
// project's Vagrantfile (vagrant/), as `./doit.sh vagrant_up` did in MetalK8s
// 2.0. It checks first that the ISO, vagrant and the provider are there, so
// that a missing one is named with how to get it rather than reported by
// vagrant halfway through.
package vagrant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Options configures Up.
type Options struct {
	Dir      string   // the directory holding the Vagrantfile
	ISO      string   // the MetalK8s ISO to attach
	Provider string   // VAGRANT_PROVIDER
	UpArgs   []string // VAGRANT_UP_ARGS, one argument each
	Snapshot string   // VAGRANT_SNAPSHOT_NAME; empty saves none
	Env      []string // the environment vagrant runs in; nil is os.Environ()
	Stdout   io.Writer
	Stderr   io.Writer

	// LookPath finds a program; nil is exec.LookPath. Tests replace it to
	// see a host with or without each program.
	LookPath func(string) (string, error)
}

// MissingError names what the host lacks to run the VM.
type MissingError struct {
	What string // the program or plugin
	Hint string // how to get it
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("vagrant:up: %s not found: %s", e.What, e.Hint)
}

func (o *Options) lookPath(name string) (string, error) {
	if o.LookPath != nil {
		return o.LookPath(name)
	}
	return exec.LookPath(name)
}

func (o *Options) env() []string {
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(env[:len(env):len(env)],
		"METALK8S_ISO="+o.ISO,
		"VAGRANT_DEFAULT_PROVIDER="+o.Provider,
	)
	return env
}

// Preflight checks that the ISO exists and that vagrant and the provider's
// programs are installed, returning a *MissingError for the first one that
// is not. It returns the path of vagrant.
func Preflight(ctx context.Context, o Options) (string, error) {
	fi, err := os.Stat(o.ISO)
	if err != nil {
		return "", &MissingError{What: "the ISO " + o.ISO, Hint: "build it with `go run mage.go iso` (BUILD_ROOT sets where)"}
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("vagrant:up: %s is not a regular file", o.ISO)
	}
	if _, err := os.Stat(o.Dir + "/Vagrantfile"); err != nil {
		return "", fmt.Errorf("vagrant:up: %w", err)
	}
	bin, err := o.lookPath("vagrant")
	if err != nil {
		return "", &MissingError{What: "vagrant", Hint: "install Vagrant (Debian: apt-get install vagrant; or https://developer.hashicorp.com/vagrant/downloads)"}
	}
	switch o.Provider {
	case "virtualbox":
		if _, err := o.lookPath("VBoxManage"); err != nil {
			return "", &MissingError{What: "VBoxManage (VirtualBox, for VAGRANT_PROVIDER=virtualbox)",
				Hint: "install VirtualBox from https://www.virtualbox.org/wiki/Linux_Downloads (Debian 12 does not ship it), or set VAGRANT_PROVIDER=libvirt"}
		}
	case "libvirt":
		if _, err := o.lookPath("virsh"); err != nil {
			return "", &MissingError{What: "virsh (libvirt, for VAGRANT_PROVIDER=libvirt)",
				Hint: "install libvirt (Debian: apt-get install libvirt-daemon-system libvirt-clients) and make sure /dev/kvm is usable"}
		}
		ok, err := hasPlugin(ctx, bin, o, "vagrant-libvirt")
		if err != nil {
			return "", err
		}
		if !ok {
			return "", &MissingError{What: "the vagrant-libvirt plugin (for VAGRANT_PROVIDER=libvirt)",
				Hint: "install it (Debian: apt-get install vagrant-libvirt; otherwise vagrant plugin install vagrant-libvirt)"}
		}
	default:
		// Other providers (docker, hyperv, plugins) are vagrant's to check:
		// the Vagrantfile only configures VirtualBox and libvirt.
		fmt.Fprintf(o.stderr(), "vagrant:up: provider %q is not checked here; the Vagrantfile configures only virtualbox and libvirt\n", o.Provider)
	}
	return bin, nil
}

// hasPlugin reports whether `vagrant plugin list` lists name, as a user or
// a system (Debian package) plugin.
func hasPlugin(ctx context.Context, bin string, o Options, name string) (bool, error) {
	cmd := exec.CommandContext(ctx, bin, "plugin", "list", "--machine-readable")
	cmd.Dir = o.Dir
	cmd.Env = o.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return false, fmt.Errorf("vagrant:up: %s plugin list: %v: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	return pluginListed(out, name), nil
}

// pluginListed reads `vagrant plugin list --machine-readable`: lines of
// timestamp,target,type,data..., a plugin as a "plugin-name" line. Commas
// inside data are escaped by vagrant, so a field never holds one.
func pluginListed(out []byte, name string) bool {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), ",")
		if len(f) >= 4 && f[2] == "plugin-name" && f[3] == name {
			return true
		}
	}
	return false
}

func (o *Options) stderr() io.Writer {
	if o.Stderr != nil {
		return o.Stderr
	}
	return os.Stderr
}

func (o *Options) stdout() io.Writer {
	if o.Stdout != nil {
		return o.Stdout
	}
	return os.Stdout
}

// Up checks the host (Preflight), then runs `vagrant up UPARGS` in Dir and,
// when Snapshot is set, `vagrant snapshot save --force SNAPSHOT`.
func Up(ctx context.Context, o Options) error {
	bin, err := Preflight(ctx, o)
	if err != nil {
		return err
	}
	if err := o.run(ctx, bin, append([]string{"up"}, o.UpArgs...)...); err != nil {
		return err
	}
	if o.Snapshot == "" {
		return nil
	}
	// --force: a re-run replaces its snapshot rather than stopping at a
	// confirmation no one is there to give.
	return o.run(ctx, bin, "snapshot", "save", "--force", o.Snapshot)
}

func (o *Options) run(ctx context.Context, bin string, args ...string) error {
	fmt.Fprintf(o.stdout(), "vagrant:up: %s %s (in %s)\n", bin, strings.Join(args, " "), o.Dir)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = o.Dir
	cmd.Env = o.env()
	cmd.Stdout, cmd.Stderr = o.stdout(), o.stderr()
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("vagrant:up: vagrant %s failed (%v); see its output above", args[0], err)
		}
		return fmt.Errorf("vagrant:up: vagrant %s: %w", args[0], err)
	}
	return nil
}
