package pkglist

import (
	"strings"
	"testing"
)

func TestProjectFile(t *testing.T) {
	l, err := Load("../../../packages/packages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]Kind{}
	for _, r := range l.Repos {
		kinds[r.Name] = r.Kind
	}
	for name, want := range map[string]Kind{"base": External, "updates": External, "extras": Shipped, "epel": Shipped, "kubernetes": Shipped, "saltstack": Shipped, "metalk8s": Shipped} {
		if kinds[name] != want {
			t.Errorf("repo %s: kind %q, want %q", name, kinds[name], want)
		}
	}
	pins := map[string]string{}
	for _, s := range l.Sets {
		for _, p := range s.Packages {
			pins[p.Name] = p.Version
		}
	}
	for name, want := range map[string]string{"kubelet": "1.12.10-0", "kubectl": "1.12.10-0", "salt-minion": "2018.3.4-1.el7", "containerd": "1.2.4-1.el7", "runc": ""} {
		if v, ok := pins[name]; !ok || v != want {
			t.Errorf("%s: pinned %q (listed %v), want %q", name, v, ok, want)
		}
	}
	if err := l.ApplyMirrors(map[string]string{"epel": "http://127.0.0.1:8080/epel/"}); err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyMirrors(map[string]string{"epl": "http://x/"}); err == nil || !strings.Contains(err.Error(), `no repository "epl"`) {
		t.Errorf("typo in REPO_MIRRORS: %v", err)
	}
}

func TestErrorsNameLine(t *testing.T) {
	for doc, want := range map[string]string{
		"repositories:\n  - name: a\n    kind: shipped\n    baseurl: ftp://x/\n":          "f.yaml:2: repository a: baseurl",
		"repositories:\n  - name: a\n    kind: weird\n":                                   "f.yaml:2: repository a: kind \"weird\"",
		"repositories:\n  - name: a\n    kind: shipped\n    colour: red\n":                `f.yaml:4: repository: unknown field "colour"`,
		"sets:\n  - name: s\n    packages:\n      - ok\n      - {name: \"bad name\"}\n":   "f.yaml:5: set s: package name",
		"local:\n  - spec: x.yaml\n    repo: nope\n":                                      "f.yaml:2: local package x.yaml: repo \"nope\"",
		"repositories:\n  - name: a\n    kind: external\n":                                "f.yaml:2: repository a: an external repository needs a baseurl",
		"repositories:\n  - name: a\n    kind: shipped\n  - name: a\n    kind: shipped\n": "f.yaml:4: repository \"a\" is defined twice (first at line 2)",
		"bogus: []\n":       "f.yaml:1: unknown key",
		"repositories: [\n": "f.yaml:1: invalid YAML",
		"sets:\n  - name: s\n    packages:\n      - {name: a, version: 1, arch: x86_64}\n": `f.yaml:4: package: unknown field "arch"`,
		"local: &l []\n": "f.yaml:1: YAML anchors and aliases are not allowed",
		"":               "f.yaml:1: want a mapping",
		"repositories:\n  - name: a\n    kind: shipped\n    gpgcheck: true\n": "no gpgkeys",
	} {
		_, err := Parse("f.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", doc, err, want)
		}
	}
}
