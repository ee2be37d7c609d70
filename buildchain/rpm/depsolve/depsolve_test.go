package depsolve

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
)

// pkg builds a package: "name-[e:]v-r.arch" plus deps written as
// "R:name >= 1.0", "P:cap = 2", "O:old < 2", "C:bad", "F:/usr/bin/x".
func pkg(nevra string, deps ...string) *repomd.Package {
	dot := strings.LastIndexByte(nevra, '.')
	arch := nevra[dot+1:]
	rest := nevra[:dot]
	dr := strings.LastIndexByte(rest, '-')
	rel := rest[dr+1:]
	rest = rest[:dr]
	dv := strings.LastIndexByte(rest, '-')
	name, ver := rest[:dv], rest[dv+1:]
	ep := "0"
	if e, v, ok := strings.Cut(ver, ":"); ok {
		ep, ver = e, v
	}
	p := &repomd.Package{Name: name, Arch: arch, Epoch: ep, Ver: ver, Rel: rel, Location: nevra + ".rpm"}
	p.Provides = append(p.Provides, repomd.Dep{Name: name, Flags: "EQ", Epoch: ep, Ver: ver, Rel: rel})
	for _, d := range deps {
		kind, spec := d[:1], d[2:]
		if kind == "F" {
			p.Files = append(p.Files, repomd.File{Path: spec})
			continue
		}
		f := strings.Fields(spec)
		dep := repomd.Dep{Name: f[0]}
		if len(f) == 3 {
			e := parseEVR(f[2])
			dep.Flags = map[string]string{"=": "EQ", "<": "LT", ">": "GT", "<=": "LE", ">=": "GE"}[f[1]]
			dep.Epoch, dep.Ver, dep.Rel = e[0], e[1], e[2]
		}
		switch kind {
		case "R":
			p.Requires = append(p.Requires, dep)
		case "P":
			p.Provides = append(p.Provides, dep)
		case "O":
			p.Obsoletes = append(p.Obsoletes, dep)
		case "C":
			p.Conflicts = append(p.Conflicts, dep)
		}
	}
	return p
}

func parseEVR(s string) [3]string {
	var out [3]string
	out[0] = "0"
	if e, v, ok := strings.Cut(s, ":"); ok {
		out[0], s = e, v
	}
	if v, r, ok := strings.Cut(s, "-"); ok {
		out[1], out[2] = v, r
	} else {
		out[1] = s
	}
	return out
}

func names(cs []*Chosen) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Repo+":"+c.Pkg.NEVRA())
	}
	sort.Strings(out)
	return out
}

func TestClosure(t *testing.T) {
	base := Repo{Name: "base", Packages: []*repomd.Package{
		pkg("glibc-2.17-1.x86_64", "P:libc.so.6()(64bit)", "F:/sbin/ldconfig"),
		pkg("glibc-2.17-1.i686", "P:libc.so.6"),
		pkg("bash-4.2-1.x86_64", "F:/bin/sh", "R:libc.so.6()(64bit)"),
		pkg("socat-1.7-1.x86_64", "R:libc.so.6()(64bit)"),
		pkg("iptables-1.4-1.x86_64", "R:/bin/sh"),
		pkg("conntrack-tools-1.4-1.x86_64"),
	}}
	k8s := Repo{Name: "kubernetes", Packages: []*repomd.Package{
		pkg("kubelet-1.12.10-0.x86_64", "R:socat", "R:iptables >= 1.4", "R:kubernetes-cni >= 0.7.5", "R:/sbin/ldconfig"),
		pkg("kubelet-1.13.0-0.x86_64", "R:socat", "R:kubernetes-cni >= 0.7.5"),
		pkg("kubernetes-cni-0.6.0-0.x86_64"),
		pkg("kubernetes-cni-0.7.5-0.x86_64"),
		pkg("kubectl-1.12.10-0.x86_64"),
	}}
	s := New([]Repo{base, k8s})
	got, err := s.Solve([]Request{{Name: "kubelet", Pin: "1.12.10-0", Set: "kubernetes"}, {Name: "kubectl", Set: "kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"base:bash-4.2-1.x86_64", "base:glibc-2.17-1.x86_64", "base:iptables-1.4-1.x86_64", "base:socat-1.7-1.x86_64",
		"kubernetes:kubectl-1.12.10-0.x86_64", "kubernetes:kubelet-1.12.10-0.x86_64", "kubernetes:kubernetes-cni-0.7.5-0.x86_64",
	}
	if g := names(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("closure:\n got  %v\n want %v", g, want)
	}
	// Unpinned: the newest kubelet.
	got, err = s.Solve([]Request{{Name: "kubelet", Set: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	if g := names(got); g[len(g)-2] != "kubernetes:kubelet-1.13.0-0.x86_64" {
		t.Fatalf("unpinned: %v", g)
	}
}

func TestUnresolvableNamesChain(t *testing.T) {
	s := New([]Repo{{Name: "epel", Packages: []*repomd.Package{
		pkg("salt-minion-2018.3.4-1.el7.noarch", "R:salt = 2018.3.4-1.el7"),
		pkg("salt-2018.3.4-1.el7.noarch", "R:python-msgpack >= 0.4"),
		pkg("python-msgpack-0.3-1.x86_64"),
	}}})
	_, err := s.Solve([]Request{{Name: "salt-minion", Pin: "2018.3.4", Set: "salt"}})
	var ue *UnresolvedError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`package set "salt"`, "salt-minion-2018.3.4-1.el7.noarch", "salt-2018.3.4-1.el7.noarch (for salt-minion requires salt = 2018.3.4-1.el7)", "nothing provides python-msgpack >= 0.4", "epel"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	_, err = s.Solve([]Request{{Name: "salt-minion", Pin: "2019.2.0", Set: "salt"}})
	if err == nil || !strings.Contains(err.Error(), "available versions: 2018.3.4-1.el7") {
		t.Fatalf("bad pin: %v", err)
	}
}

func TestObsoletesAndConflicts(t *testing.T) {
	s := New([]Repo{{Name: "r", Packages: []*repomd.Package{
		pkg("app-1-1.x86_64", "R:helper", "O:helper-legacy < 3"),
		pkg("helper-legacy-2-1.x86_64", "P:helper = 9"), // newer provide, but obsoleted by app
		pkg("helper-1-1.x86_64"),
		pkg("tool-1-1.x86_64", "R:lib"),
		pkg("libnew-2-1.x86_64", "P:lib", "C:tool < 2"), // conflicts with tool
		pkg("libold-1-1.x86_64", "P:lib"),
	}}})
	got, err := s.Solve([]Request{{Name: "app", Set: "s"}, {Name: "tool", Set: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"r:app-1-1.x86_64", "r:helper-1-1.x86_64", "r:libold-1-1.x86_64", "r:tool-1-1.x86_64"}
	if g := names(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("got %v, want %v", g, want)
	}
	// Only a conflicting provider: the error says why it was ruled out.
	s = New([]Repo{{Name: "r", Packages: []*repomd.Package{pkg("tool-1-1.x86_64", "R:lib"), pkg("libnew-2-1.x86_64", "P:lib", "C:tool < 2")}}})
	if _, err := s.Solve([]Request{{Name: "tool", Set: "s"}}); err == nil || !strings.Contains(err.Error(), "conflicts with tool-1-1.x86_64") {
		t.Fatalf("err = %v", err)
	}
}

// synthetic makes a repository of n packages with random dependencies
// among them plus the MetalK8s names, for the benchmark.
func synthetic(n int) []Repo {
	r := rand.New(rand.NewPCG(1, 2))
	var ps []*repomd.Package
	for i := 0; i < n; i++ {
		var deps []string
		for k := 0; k < r.IntN(6); k++ {
			deps = append(deps, fmt.Sprintf("R:lib%d.so()(64bit)", r.IntN(n)))
		}
		deps = append(deps, fmt.Sprintf("P:lib%d.so()(64bit)", i), fmt.Sprintf("F:/usr/bin/tool%d", i))
		if i%7 == 0 {
			deps = append(deps, fmt.Sprintf("R:/usr/bin/tool%d", r.IntN(n)))
		}
		for v := 1; v <= 1+i%2; v++ {
			ps = append(ps, pkg(fmt.Sprintf("pkg%d-%d.0-1.x86_64", i, v), deps...))
		}
	}
	for i, name := range metalk8sNames {
		ps = append(ps, pkg(name+"-1.0-1.x86_64", fmt.Sprintf("R:lib%d.so()(64bit)", i*37%n)))
	}
	return []Repo{{Name: "synthetic", Packages: ps}}
}

var metalk8sNames = []string{"containerd", "cri-tools", "container-selinux", "coreutils", "ebtables", "ethtool", "genisoimage", "iproute", "iptables", "kubectl", "kubelet", "kubernetes-cni", "m2crypto", "python2-kubernetes", "runc", "salt-minion", "skopeo", "socat", "sos", "util-linux", "yum-plugin-versionlock"}

// TestSyntheticClosure writes a synthetic primary.xml of about 5,000
// packages, reads it back and computes the closure of the MetalK8s package
// names over it; BenchmarkClosure5000 measures the same work.
func TestSyntheticClosure(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm">` + "\n")
	for _, p := range synthetic(3333)[0].Packages {
		p.Checksum, p.ChecksumType = strings.Repeat("ab", 32), "sha256"
		doc.Write(repogen.AppendPrimary(nil, p))
	}
	doc.WriteString("</metadata>\n")
	start := time.Now()
	var ps []*repomd.Package
	if err := repomd.ParsePrimary(bytes.NewReader(doc.Bytes()), func(p *repomd.Package) error { ps = append(ps, p); return nil }); err != nil {
		t.Fatal(err)
	}
	parsed := time.Since(start)
	repos := []Repo{{Name: "synthetic", Packages: ps}}
	s := New(repos)
	var reqs []Request
	for _, n := range metalk8sNames {
		reqs = append(reqs, Request{Name: n, Set: "metalk8s"})
	}
	got, err := s.Solve(reqs)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("primary.xml of %d packages (%d KiB): parsed in %s; parse + closure of %d requests (%d packages) in %s", len(ps), doc.Len()>>10, parsed, len(reqs), len(got), d)
	if len(ps) < 5000 {
		t.Errorf("read back %d packages of the synthetic primary.xml", len(ps))
	}
	names := map[string]bool{}
	for _, p := range got {
		names[p.Pkg.Name] = true
	}
	for _, n := range metalk8sNames {
		if !names[n] {
			t.Errorf("closure lacks the requested %s", n)
		}
	}
}

func BenchmarkClosure5000(b *testing.B) {
	repos := synthetic(3333)
	var reqs []Request
	for _, n := range metalk8sNames {
		reqs = append(reqs, Request{Name: n, Set: "metalk8s"})
	}
	for i := 0; i < b.N; i++ {
		if _, err := New(repos).Solve(reqs); err != nil {
			b.Fatal(err)
		}
	}
}
