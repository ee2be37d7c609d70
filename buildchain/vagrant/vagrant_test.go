package vagrant

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// projectVagrant is the project's vagrant/ directory.
const projectVagrant = "../../vagrant"

// vagrantEnv keeps vagrant off the user's ~/.vagrant.d and out of the source
// tree (.vagrant/), with no box ever fetched.
func vagrantEnv(t *testing.T) []string {
	t.Helper()
	return append(os.Environ(),
		"VAGRANT_HOME="+t.TempDir(),
		"VAGRANT_DOTFILE_PATH="+filepath.Join(t.TempDir(), "dotfile"),
		"VAGRANT_CHECKPOINT_DISABLE=1",
		"VAGRANT_NO_COLOR=1",
	)
}

func fakeISO(t *testing.T) string {
	t.Helper()
	iso := filepath.Join(t.TempDir(), "metalk8s.iso")
	if err := os.WriteFile(iso, []byte("not really an ISO"), 0o644); err != nil {
		t.Fatal(err)
	}
	return iso
}

// host is a PATH with exactly the named programs.
func host(programs map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		if p, ok := programs[name]; ok {
			return p, nil
		}
		return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
}

func TestPreflightNamesWhatIsMissing(t *testing.T) {
	iso := fakeISO(t)
	for _, tc := range []struct {
		name     string
		iso      string
		provider string
		programs map[string]string
		want     []string
	}{
		{"no ISO", filepath.Join(t.TempDir(), "metalk8s.iso"), "virtualbox",
			map[string]string{"vagrant": "/usr/bin/vagrant", "VBoxManage": "/usr/bin/VBoxManage"},
			[]string{"metalk8s.iso not found", "go run mage.go iso"}},
		{"no vagrant", iso, "virtualbox", map[string]string{"VBoxManage": "/usr/bin/VBoxManage"},
			[]string{"vagrant not found", "apt-get install vagrant"}},
		{"no VirtualBox", iso, "virtualbox", map[string]string{"vagrant": "/usr/bin/vagrant", "virsh": "/usr/bin/virsh"},
			[]string{"VBoxManage (VirtualBox, for VAGRANT_PROVIDER=virtualbox) not found", "virtualbox.org", "VAGRANT_PROVIDER=libvirt"}},
		{"no virsh", iso, "libvirt", map[string]string{"vagrant": "/usr/bin/vagrant", "VBoxManage": "/usr/bin/VBoxManage"},
			[]string{"virsh (libvirt, for VAGRANT_PROVIDER=libvirt) not found", "libvirt-clients"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Preflight(context.Background(), Options{
				Dir: projectVagrant, ISO: tc.iso, Provider: tc.provider, LookPath: host(tc.programs),
			})
			var missing *MissingError
			if !errors.As(err, &missing) {
				t.Fatalf("got %v, want a *MissingError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// The vagrant-libvirt check asks the real vagrant, which has no plugin in a
// fresh VAGRANT_HOME.
func TestPreflightNamesMissingLibvirtPlugin(t *testing.T) {
	bin := testenv.Need(t, "vagrant")[0]
	_, err := Preflight(context.Background(), Options{
		Dir: projectVagrant, ISO: fakeISO(t), Provider: "libvirt", Env: vagrantEnv(t),
		LookPath: host(map[string]string{"vagrant": bin, "virsh": "/usr/bin/virsh"}),
	})
	var missing *MissingError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "the vagrant-libvirt plugin") ||
		!strings.Contains(err.Error(), "apt-get install vagrant-libvirt") {
		t.Fatalf("got %v, want the vagrant-libvirt plugin named", err)
	}
}

func TestPreflightPasses(t *testing.T) {
	got, err := Preflight(context.Background(), Options{
		Dir: projectVagrant, ISO: fakeISO(t), Provider: "virtualbox",
		LookPath: host(map[string]string{"vagrant": "/opt/vagrant", "VBoxManage": "/opt/VBoxManage"}),
	})
	if err != nil || got != "/opt/vagrant" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// Up against a stand-in vagrant that records its arguments, one per line,
// and its environment: no VM can run here. Every argument must arrive as
// one word, as configured, with no shell in between.
func TestUpRunsVagrantUpThenSnapshot(t *testing.T) {
	sh := testenv.Need(t, "sh")[0]
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "vagrant")
	script := "#!" + sh + "\n{ echo CALL; printf '%s\\n' \"$@\"; echo \"ISO=$METALK8S_ISO PROVIDER=$VAGRANT_DEFAULT_PROVIDER PWD=$PWD\"; } >> " + log + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	vdir, err := filepath.Abs(projectVagrant)
	if err != nil {
		t.Fatal(err)
	}
	iso := fakeISO(t)
	var out bytes.Buffer
	err = Up(context.Background(), Options{
		Dir: vdir, ISO: iso, Provider: "virtualbox",
		UpArgs:   []string{"--provision", "--provider", "virtualbox", "bootstrap"},
		Snapshot: "ready", Stdout: &out, Stderr: &out,
		LookPath: host(map[string]string{"vagrant": fake, "VBoxManage": "/opt/VBoxManage"}),
	})
	if err != nil {
		t.Fatal(err, out.String())
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	env := "ISO=" + iso + " PROVIDER=virtualbox PWD=" + vdir
	want := "CALL\nup\n--provision\n--provider\nvirtualbox\nbootstrap\n" + env + "\n" +
		"CALL\nsnapshot\nsave\n--force\nready\n" + env + "\n"
	if string(got) != want {
		t.Fatalf("vagrant called as\n%s\nwant\n%s", got, want)
	}

	// Without a snapshot name, no snapshot; a failing up stops there.
	os.Remove(log)
	failing := filepath.Join(dir, "vagrant-fails")
	if err := os.WriteFile(failing, []byte(script+"exit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = Up(context.Background(), Options{
		Dir: vdir, ISO: iso, Provider: "virtualbox", UpArgs: []string{"--provision"}, Snapshot: "ready",
		Stdout: &out, Stderr: &out,
		LookPath: host(map[string]string{"vagrant": failing, "VBoxManage": "/opt/VBoxManage"}),
	})
	if err == nil || !strings.Contains(err.Error(), "vagrant up failed") {
		t.Fatalf("got %v, want vagrant up failed", err)
	}
	if got, _ := os.ReadFile(log); strings.Contains(string(got), "snapshot") {
		t.Fatalf("snapshot taken after a failed up:\n%s", got)
	}
}

// Debian's vagrant validates the Vagrantfile. Provider blocks are skipped
// (-p): VirtualBox is not installed here and vagrant refuses to validate
// for a provider it cannot use. validate downloads no box.
func TestVagrantfileValidates(t *testing.T) {
	bin := testenv.Need(t, "vagrant")[0]
	validate := func(extra ...string) (string, error) {
		cmd := exec.Command(bin, "validate", "--ignore-provider")
		cmd.Dir = projectVagrant
		cmd.Env = append(vagrantEnv(t), extra...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := validate(); err != nil || !strings.Contains(out, "validated successfully") {
		t.Fatalf("vagrant validate: %v\n%s", err, out)
	}
	if out, err := validate("METALK8S_BOX=generic/rocky8", "METALK8S_NETWORK=10.100.0", "METALK8S_ISO=/nonexistent.iso"); err != nil {
		t.Fatalf("vagrant validate with settings: %v\n%s", err, out)
	}
	// validate does fail: a bad setting is named.
	out, err := validate("METALK8S_NETWORK=10.0.0.0/8")
	if err == nil || !strings.Contains(out, "METALK8S_NETWORK") {
		t.Fatalf("a bad METALK8S_NETWORK validated: %v\n%s", err, out)
	}
}

func TestProvisioningScriptsShellcheckClean(t *testing.T) {
	bin := testenv.Need(t, "shellcheck")[0]
	scripts, err := filepath.Glob(filepath.Join(projectVagrant, "provision", "*.sh"))
	if err != nil || len(scripts) < 3 {
		t.Fatalf("provisioning scripts: %v %v", scripts, err)
	}
	out, err := exec.Command(bin, append([]string{"--shell=bash", "--severity=style"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

func TestPluginListed(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"1764647000,,plugin-name,vagrant-libvirt\n1764647000,,plugin-version,0.11.2%!(VAGRANT_COMMA)system\n", true},
		{"1764647000,,ui,info,No plugins installed.\n", false},
		{"1,,plugin-name,vagrant-libvirt-extra\n", false},
		{"1,,ui,info,vagrant-libvirt\n", false},
		{"1,,plugin-name,vagrant-libvirt\r\n", true},
	} {
		if got := pluginListed([]byte(tc.out), "vagrant-libvirt"); got != tc.want {
			t.Errorf("%q: got %v", tc.out, got)
		}
	}
}

// FuzzPluginListed: a listed plugin is one exact "plugin-name" field, never
// a substring of some other line.
func FuzzPluginListed(f *testing.F) {
	f.Fuzz(func(t *testing.T, out []byte, name string) {
		if !pluginListed(out, name) {
			return
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, ",plugin-name,"+name) {
				return
			}
		}
		t.Fatalf("%q listed in %q without a plugin-name line", name, out)
	})
}
