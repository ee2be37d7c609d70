package vagrant

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// mount-iso.sh cannot run here (this kernel has no iso9660 and no VM runs),
// but how it reads product.txt can: its product_value function must read
// back every value product.Encode writes, quoted or not.
func TestMountISOReadsProductTxt(t *testing.T) {
	bash := testenv.Need(t, "bash")[0]
	script, err := os.ReadFile(filepath.Join(projectVagrant, "provision", "mount-iso.sh"))
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?ms)^product_value\(\) \{.*?^\}\n`).Find(script)
	if fn == nil {
		t.Fatal("mount-iso.sh has no product_value function")
	}
	for _, v := range []string{"2.0.0-dev", "2.0.0", "MetalK8s", "a b", "it's", "$HOME", "x'"} {
		data, err := product.Encode([]product.Field{
			{Key: "NAME", Value: "MetalK8s"}, {Key: "SHORT_VERSION", Value: "decoy"}, {Key: "X_VERSION", Value: "decoy2"}, {Key: "VERSION", Value: v},
		})
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "product.txt")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bash, "-c", string(fn)+`product_value "$1" VERSION`, "bash", file).Output()
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != v {
			t.Errorf("product.txt %q: read VERSION %q, want %q", data, got, v)
		}
	}
}

// bootstrap-config.sh runs here against this host's own network: the
// address of its first kernel link route stands for the VM's private one.
func TestBootstrapConfigWritesBootstrapYAML(t *testing.T) {
	progs := testenv.Need(t, "bash", "ip", "awk", "hostname")
	out, err := exec.Command(progs[1], "-o", "-4", "route", "show", "proto", "kernel", "scope", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^(\S+) .* src (\S+)`).FindStringSubmatch(strings.Split(string(out), "\n")[0])
	if m == nil {
		t.Skipf("no IPv4 link route on this host: %q", out)
	}
	cidr, ip := m[1], m[2]
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	archives, confDir := t.TempDir(), filepath.Join(t.TempDir(), "etc-metalk8s")
	product := "/srv/scality/metalk8s-2.0.0-dev"
	if err := os.WriteFile(filepath.Join(archives, ".metalk8s-iso"), []byte(product+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(progs[0], append([]string{filepath.Join(projectVagrant, "provision", "bootstrap-config.sh")}, args...)...)
		cmd.Env = append(os.Environ(), "ARCHIVES="+archives, "CONFIG_DIR="+confDir)
		return cmd.CombinedOutput()
	}
	if out, err := run(ip); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(confDir, "bootstrap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatalf("bootstrap.yaml: %v\n%s", err, data)
	}
	want := map[string]any{
		"apiVersion": "metalk8s.scality.com/v1alpha2",
		"kind":       "BootstrapConfiguration",
		"networks":   map[string]any{"controlPlane": cidr, "workloadPlane": cidr},
		"ca":         map[string]any{"minion": hostname},
		"apiServer":  map[string]any{"host": ip},
		"products":   map[string]any{"metalk8s": []any{product}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bootstrap.yaml:\n%s\nwant %v", data, want)
	}
	if fi, err := os.Stat(filepath.Join(confDir, "bootstrap.yaml")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("bootstrap.yaml mode: %v %v", fi.Mode(), err)
	}

	// An address no interface holds is named, and the file is left as it was.
	if out, err := run("198.51.100.77"); err == nil || !strings.Contains(string(out), "no interface holds 198.51.100.77") {
		t.Fatalf("got %v: %s", err, out)
	}
	if again, _ := os.ReadFile(filepath.Join(confDir, "bootstrap.yaml")); string(again) != string(data) {
		t.Fatal("a failed run changed bootstrap.yaml")
	}
	if left, _ := filepath.Glob(filepath.Join(confDir, "bootstrap.yaml.*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
