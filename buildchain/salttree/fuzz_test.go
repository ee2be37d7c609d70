package salttree

import "testing"

// ParseNEVRA reads resolved.json, which other steps write from upstream
// metadata: whatever it accepts must reassemble to its input.
func FuzzParseNEVRA(f *testing.F) {
	for _, s := range []string{"kubelet-1.12.10-0.x86_64", "container-selinux-2:2.99-1.el7_6.noarch", "a-b-c-1-2.src", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseNEVRA(s)
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || p.Release == "" || p.Arch == "" {
			t.Fatalf("%q: empty field in %+v", s, p)
		}
		if got := p.Name + "-" + pkgVersion(p) + "." + p.Arch; got != s {
			t.Fatalf("%q reassembles to %q", s, got)
		}
	})
}
