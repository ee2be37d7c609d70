package salttree

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/internal/testenv"
)

func python(t *testing.T) string {
	t.Helper()
	py, err := Python()
	if err != nil {
		if testenv.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return py
}

// built writes the real salt/ tree as saltTree does and returns its root
// and the pillars to check it against: the defaults, and the defaults with
// an archive, a configured and a removed Solution so that every loop runs.
func built(t *testing.T) (string, []map[string]any) {
	dir := t.TempDir()
	opts := fixture(t, dir)
	if err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	load := func() map[string]any {
		var p map[string]any
		data, err := os.ReadFile(filepath.Join(opts.RootDir, "pillar", "metalk8s.sls"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	defaults, sample := load(), load()
	m := sample["metalk8s"].(map[string]any)
	m["archives"] = []any{map[string]any{"path": "/srv/iso/metalk8s-2.0.0-dev.iso", "version": "2.0.0-dev"}}
	m["solutions"] = map[string]any{
		"configured": []any{map[string]any{"name": "example", "version": "1.0.0", "archive": "/srv/iso/example-1.0.0.iso"}},
		"removed":    []any{map[string]any{"name": "example", "version": "0.9.0", "archive": "/srv/iso/example-0.9.0.iso"}},
	}
	return filepath.Join(opts.RootDir, "salt"), []map[string]any{defaults, sample}
}

var grains = map[string]any{"id": "bootstrap", "os_family": "RedHat", "osmajorrelease": 7}

func TestCheckShippedTree(t *testing.T) {
	py := python(t)
	root, pillars := built(t)
	probs, err := Check(context.Background(), py, root, grains, pillars...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
}

// Each mutation breaks one rule; the checker must name it.
func TestCheckFindsProblems(t *testing.T) {
	py := python(t)
	cases := []struct {
		file, old, new, want string
	}{
		{"metalk8s/kubernetes/kubelet/init.sls", "pkg.installed:", "pkg.hold:", "pkg.hold is not one of the allowed"},
		{"metalk8s/kubernetes/kubelet/init.sls", "    - fromrepo:", "    - from_repo:", `takes no argument "from_repo"`},
		{"metalk8s/kubernetes/kubelet/init.sls", "['kubelet', 'kubectl', 'cri-tools']", "['kubelet', 'kubectl', 'cri-tools', 'kubeadm']", "kubeadm"},
		{"metalk8s/kubernetes/kubelet/init.sls", "\"{{ pkg_version(name) }}\"", "1.12.9-0", "version 1.12.9-0"},
		{"metalk8s/kubernetes/kubelet/init.sls", "- pkg: Install kubelet", "- pkg: Install kubelett", "matches no state"},
		{"metalk8s/kubernetes/kubelet/init.sls", "versions.packages[name].repo", "versions.packages[name].repository", "has no attribute 'repository'"},
		{"metalk8s/container-engine/containerd/init.sls", "versions.images.pause.version", "'3.0'", "k8s.gcr.io/pause:3.0 is not in versions.json"},
		{"metalk8s/container-engine/containerd/files/config.toml.j2", `endpoint = ["{{ registry_endpoint }}"]`, `endpoint = [{{ registry_endpoint }}]`, "config.toml.j2"},
		{"metalk8s/archives/init.sls", "    - fstype: iso9660", "  - fstype: iso9660", "not YAML"},
		{"metalk8s/orchestrate/solutions.sls", "salt['pillar.get']", "salt['cmd.run']", "not one of the stand-in's functions"},
		{"metalk8s/kubernetes/apiserver/files/manifest.yaml.j2", "image: {{ image('kube-apiserver') }}", "image: k8s.gcr.io/kube-apiserver:v1.12.9", "k8s.gcr.io/kube-apiserver:v1.12.9 is not in versions.json"},
		{"metalk8s/kubernetes/apiserver/files/manifest.yaml.j2", "image('kube-apiserver')", "image('kube-apiserver-amd64')", "kube-apiserver-amd64"},
		{"metalk8s/addons/coredns/files/coredns.yaml.j2", "kind: ConfigMap", "kindd: ConfigMap", "coredns.yaml.j2: rendered document 2 has no kind"},
		{"metalk8s/addons/calico/files/calico.yaml.j2", "  name: calico-node\n  namespace", "  name: [calico-node\n  namespace", "calico.yaml.j2: rendered document 1 is not YAML"},
		{"metalk8s/roles/master/init.sls", "metalk8s.kubernetes.scheduler", "metalk8s.kubernetes.schedulr", "includes metalk8s.kubernetes.schedulr, which is not in the tree"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			root, pillars := built(t)
			p := filepath.Join(root, filepath.FromSlash(c.file))
			data, _ := os.ReadFile(p)
			if !strings.Contains(string(data), c.old) {
				t.Fatalf("%s lacks %q", c.file, c.old)
			}
			os.WriteFile(p, []byte(strings.Replace(string(data), c.old, c.new, 1)), 0o644)
			probs, err := Check(context.Background(), py, root, grains, pillars...)
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range probs {
				if strings.Contains(pr, c.want) {
					return
				}
			}
			t.Errorf("want a problem with %q, got %q", c.want, probs)
		})
	}
	t.Run("unused template", func(t *testing.T) {
		root, pillars := built(t)
		os.WriteFile(filepath.Join(root, "metalk8s", "stray.conf.j2"), []byte("x\n"), 0o644)
		probs, _ := Check(context.Background(), py, root, grains, pillars...)
		if len(probs) != 1 || !strings.Contains(probs[0], "stray.conf.j2: no state renders") {
			t.Errorf("got %q", probs)
		}
	})
}
