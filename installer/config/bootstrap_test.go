package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const validBootstrap = `apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks:
  controlPlane: 172.21.0.0/16
  workloadPlane:
    - 172.22.0.0/16
    - 172.23.0.0/16
ca:
  minion: bootstrap
apiServer:
  host: 172.21.0.10
products:
  metalk8s:
    - /srv/iso/metalk8s-2.0.0.iso
`

func TestLoadBootstrap(t *testing.T) {
	b, err := LoadBootstrap("testdata/bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Networks{
		ControlPlane:  []netip.Prefix{netip.MustParsePrefix("172.21.0.0/16")},
		WorkloadPlane: []netip.Prefix{netip.MustParsePrefix("172.22.0.0/16"), netip.MustParsePrefix("172.23.0.0/16")},
		Pods:          DefaultPodsNetwork,
		Services:      DefaultServicesNetwork,
	}
	if !slices.Equal(b.Networks.ControlPlane, want.ControlPlane) || !slices.Equal(b.Networks.WorkloadPlane, want.WorkloadPlane) ||
		b.Networks.Pods != want.Pods || b.Networks.Services != want.Services {
		t.Errorf("networks %+v, want %+v", b.Networks, want)
	}
	if b.CA.Minion != "bootstrap.example.com" || b.APIServer.Host != "172.21.0.10" || b.APIServer.Addr != netip.MustParseAddr("172.21.0.10") {
		t.Errorf("ca/apiServer: %+v %+v", b.CA, b.APIServer)
	}
	if !slices.Equal(b.Products.MetalK8s, []string{"/srv/iso/metalk8s-2.0.0.iso"}) {
		t.Errorf("products %v", b.Products.MetalK8s)
	}
	if _, err := LoadBootstrap("testdata/missing.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseBootstrapForms(t *testing.T) {
	// A scalar where a list may be, a DNS host, IPv6 single-stack, explicit
	// pods and services, and a scalar products.metalk8s.
	src := `apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks:
  controlPlane: [fd00:1::/64, fd00:2::/64]
  workloadPlane: fd00:1::/64
  pods: fd00:100::/56
  services: fd00:200::/108
ca: {minion: node-1}
apiServer: {host: API.example.com}
products: {metalk8s: /srv/iso/metalk8s.iso}
`
	b, err := ParseBootstrap("b.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Networks.ControlPlane) != 2 || b.Networks.Pods.String() != "fd00:100::/56" || b.Networks.Services.String() != "fd00:200::/108" {
		t.Errorf("networks %+v", b.Networks)
	}
	if b.APIServer.Host != "API.example.com" || b.APIServer.Addr.IsValid() {
		t.Errorf("apiServer %+v", b.APIServer)
	}
	if !slices.Equal(b.Products.MetalK8s, []string{"/srv/iso/metalk8s.iso"}) {
		t.Errorf("products %v", b.Products.MetalK8s)
	}
}

// replace returns validBootstrap with one line changed, so each case
// shows the line it breaks.
func replace(old, new string) string {
	if !strings.Contains(validBootstrap, old) {
		panic("no " + old)
	}
	return strings.Replace(validBootstrap, old, new, 1)
}

func TestBootstrapRules(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []string // every problem, as printed
	}{
		{"empty", "# nothing\n", []string{"b.yaml: holds no document"}},
		{"syntax", "networks: [\n", []string{"b.yaml:1: invalid YAML"}},
		{"not a mapping", "- a\n", []string{"b.yaml:1: want a mapping, got a list"}},
		{"section not a mapping", replace("ca:\n  minion: bootstrap\n", "ca: [bootstrap]\n"), []string{"b.yaml:8: ca: want a mapping, got a list"}},
		{"networks not a mapping", replace("networks:\n", "networks: 10.0.0.0/8\nx:\n"), []string{"b.yaml:3: networks: want a mapping, got the scalar \"10.0.0.0/8\"", "b.yaml:4: x: unknown field"}},
		{"api version", replace("v1alpha2", "v1alpha1"), []string{`b.yaml:1: apiVersion: "metalk8s.scality.com/v1alpha1" is not supported; want "metalk8s.scality.com/v1alpha2"`}},
		{"kind", replace("kind: BootstrapConfiguration", "kind: Bootstrap"), []string{`b.yaml:2: kind: "Bootstrap" is not supported`}},
		{"unknown field", replace("ca:\n", "proxies: {}\nca:\n"), []string{"b.yaml:8: proxies: unknown field"}},
		{"unknown nested", replace("  minion: bootstrap\n", "  minion: bootstrap\n  cert: x\n"), []string{"b.yaml:10: ca.cert: unknown field (known: minion)"}},
		{"duplicate key", replace("ca:\n", "ca:\n  minion: a\nca:\n"), []string{"b.yaml:10: ca: given twice (first on line 8)"}},
		{"duplicate nested", replace("  minion: bootstrap\n", "  minion: bootstrap\n  minion: other\n"), []string{"b.yaml:10: ca.minion: given twice (first on line 9)"}},
		{"missing sections", "apiVersion: metalk8s.scality.com/v1alpha2\nkind: BootstrapConfiguration\n", []string{
			"b.yaml:1: networks: is required", "b.yaml:1: ca: is required", "b.yaml:1: apiServer: is required", "b.yaml:1: products: is required"}},
		{"missing fields", replace("  controlPlane: 172.21.0.0/16\n", "") + "", []string{"b.yaml:4: networks.controlPlane: is required"}},
		{"null field", replace("  host: 172.21.0.10", "  host:"), []string{"b.yaml:11: apiServer.host: is required"}},
		{"not a CIDR", replace("    - 172.23.0.0/16", "    - 10.0.0.0/33"), []string{`b.yaml:7: networks.workloadPlane[1]: "10.0.0.0/33" is not a CIDR`}},
		{"host bits", replace("controlPlane: 172.21.0.0/16", "controlPlane: 172.21.0.10/16"), []string{`b.yaml:4: networks.controlPlane: "172.21.0.10/16" has host bits set; the network is 172.21.0.0/16`}},
		{"mapped", replace("controlPlane: 172.21.0.0/16", "controlPlane: ::ffff:10.100.0.0/112"), []string{"networks.controlPlane: \"::ffff:10.100.0.0/112\" is an IPv4-mapped IPv6 network"}},
		{"plane empty list", replace("controlPlane: 172.21.0.0/16", "controlPlane: []"), []string{"b.yaml:4: networks.controlPlane: is empty"}},
		{"plane duplicate", replace("    - 172.23.0.0/16", "    - 172.22.0.0/16"), []string{"b.yaml:7: networks.workloadPlane[1]: 172.22.0.0/16 is listed twice (first at networks.workloadPlane[0])"}},
		{"plane mapping", replace("controlPlane: 172.21.0.0/16", "controlPlane: {a: b}"), []string{"b.yaml:4: networks.controlPlane: want a string or a list of strings, got a mapping"}},
		{"plane item not string", replace("    - 172.23.0.0/16", "    - [x]"), []string{"b.yaml:7: networks.workloadPlane[1]: want a string, got a list"}},
		{"pods overlap services", replace("networks:\n", "networks:\n  pods: 10.96.0.0/16\n"), []string{"b.yaml:4: networks.pods: 10.96.0.0/16 overlaps networks.services 10.96.0.0/12 (the default)"}},
		{"pods overlap plane", replace("networks:\n", "networks:\n  pods: 172.22.128.0/17\n"), []string{"b.yaml:4: networks.pods: 172.22.128.0/17 overlaps networks.workloadPlane[0] 172.22.0.0/16"}},
		{"services overlap plane", replace("controlPlane: 172.21.0.0/16", "controlPlane: 10.0.0.0/8") + "", []string{
			"b.yaml:11: apiServer.host: 172.21.0.10 is in no network of networks.controlPlane [10.0.0.0/8]; nodes reach the API over the control plane",
			"b.yaml:4: networks.pods: 10.233.0.0/16 (the default) overlaps networks.controlPlane 10.0.0.0/8",
			"b.yaml:4: networks.services: 10.96.0.0/12 (the default) overlaps networks.controlPlane 10.0.0.0/8"}},
		{"services too large", replace("networks:\n", "networks:\n  services: 10.64.0.0/11\n"), []string{"b.yaml:4: networks.services: 10.64.0.0/11 is too large; kube-apiserver takes at most a /12 IPv4 service network"}},
		{"services v6 too large", replace("networks:\n", "networks:\n  pods: fd00::/64\n  services: fd01::/64\n"), []string{
			"b.yaml:5: networks.services: fd01::/64 is too large; kube-apiserver takes at most a /108 IPv6",
			"b.yaml:6: networks.controlPlane: 172.21.0.0/16 is IPv4 but networks.pods fd00::/64 is IPv6; the cluster is single-stack",
			"b.yaml:8: networks.workloadPlane[0]: 172.22.0.0/16 is IPv4",
			"b.yaml:9: networks.workloadPlane[1]: 172.23.0.0/16 is IPv4"}},
		{"mixed families", replace("networks:\n", "networks:\n  services: fd00::/108\n"), []string{"b.yaml:4: networks.services: fd00::/108 is IPv6 but networks.pods 10.233.0.0/16 (the default) is IPv4"}},
		{"plane family", replace("    - 172.23.0.0/16", "    - fd00::/64"), []string{"b.yaml:7: networks.workloadPlane[1]: fd00::/64 is IPv6 but networks.pods 10.233.0.0/16 (the default) is IPv4"}},
		{"minion upper", replace("minion: bootstrap", "minion: Bootstrap"), []string{`b.yaml:9: ca.minion: "Bootstrap" has upper-case letters`}},
		{"minion bad", replace("minion: bootstrap", "minion: boot_strap"), []string{`b.yaml:9: ca.minion: "boot_strap" is not a DNS name`}},
		{"minion bool", replace("minion: bootstrap", "minion: true"), []string{"b.yaml:9: ca.minion: want a string, got the scalar \"true\""}},
		{"host bad name", replace("host: 172.21.0.10", "host: -api.example.com"), []string{`b.yaml:11: apiServer.host: "-api.example.com" is not a DNS name`}},
		{"host bad ip", replace("host: 172.21.0.10", "host: 172.21.0.300"), []string{`b.yaml:11: apiServer.host: "172.21.0.300" is neither an IP address nor a DNS name`}},
		{"host port", replace("host: 172.21.0.10", "host: 172.21.0.10:6443"), []string{`apiServer.host: "172.21.0.10:6443" is neither an IP address nor a DNS name (no brackets or port`}},
		{"host brackets", replace("host: 172.21.0.10", "host: '[fd00::1]'"), []string{`apiServer.host: "[fd00::1]" is neither`}},
		{"host zone", replace("host: 172.21.0.10", "host: fe80::1%eth0"), []string{`apiServer.host: "fe80::1%eth0" has an IPv6 zone`}},
		{"host unspecified", replace("host: 172.21.0.10", "host: 0.0.0.0"), []string{`apiServer.host: "0.0.0.0" is not an address a node can connect to`}},
		{"host outside control plane", replace("host: 172.21.0.10", "host: 172.22.0.10"), []string{"b.yaml:11: apiServer.host: 172.22.0.10 is in no network of networks.controlPlane [172.21.0.0/16]"}},
		{"host too long", replace("host: 172.21.0.10", "host: "+strings.Repeat("a.", 127)+"com"), []string{"bytes long; a DNS name has at most 253"}},
		{"relative archive", replace("/srv/iso/metalk8s-2.0.0.iso", "metalk8s.iso"), []string{`b.yaml:14: products.metalk8s[0]: "metalk8s.iso" is relative; write the absolute path (relative paths depend on the directory a command runs in: MetalK8s issue #3082)`}},
		{"unclean archive", replace("/srv/iso/metalk8s-2.0.0.iso", "/srv/iso/../metalk8s.iso"), []string{`products.metalk8s[0]: "/srv/iso/../metalk8s.iso" is not clean; write "/srv/metalk8s.iso"`}},
		{"trailing slash", replace("/srv/iso/metalk8s-2.0.0.iso", "/srv/iso/"), []string{`"/srv/iso/" is not clean; write "/srv/iso"`}},
		{"root archive", replace("/srv/iso/metalk8s-2.0.0.iso", "/"), []string{`products.metalk8s[0]: "/" is the root directory`}},
		{"control char", replace("/srv/iso/metalk8s-2.0.0.iso", `"/srv/a\tb.iso"`), []string{`products.metalk8s[0]: "/srv/a\tb.iso" holds a control character`}},
		{"empty archive", replace("/srv/iso/metalk8s-2.0.0.iso", `""`), []string{"products.metalk8s[0]: the path is empty"}},
		{"duplicate archive", replace("    - /srv/iso/metalk8s-2.0.0.iso", "    - /a.iso\n    - /a.iso"), []string{`b.yaml:15: products.metalk8s[1]: "/a.iso" is listed twice (first at products.metalk8s[0])`}},
		{"no archives", replace("    - /srv/iso/metalk8s-2.0.0.iso", "    []"), []string{"products.metalk8s: is empty; want at least one archive"}},
		{"every error at once", `apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks:
  controlPlane: 10.0.0.0/33
  workloadPlane: [10.1.0.0/16, nope]
  pods: 10.1.0.0/16
ca:
  minion: Bad
apiServer:
  host: "?"
products:
  metalk8s: [rel.iso]
`, []string{
			`b.yaml:4: networks.controlPlane: "10.0.0.0/33" is not a CIDR`,
			`b.yaml:5: networks.workloadPlane[1]: "nope" is not a CIDR`,
			"b.yaml:6: networks.pods: 10.1.0.0/16 overlaps networks.workloadPlane[0] 10.1.0.0/16",
			`b.yaml:8: ca.minion: "Bad" has upper-case letters`,
			`b.yaml:10: apiServer.host: "?" is not a DNS name`,
			`b.yaml:12: products.metalk8s[0]: "rel.iso" is relative`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := ParseBootstrap("b.yaml", []byte(c.src))
			if err == nil {
				t.Fatalf("accepted: %v", b)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not an Errors: %v", err, err)
			}
			// Each wanted message matches a problem, in order, and there
			// are no others.
			msgs := strings.Split(err.Error(), "\n")
			if len(msgs) != len(c.want) {
				t.Errorf("%d problems, want %d:\n%v", len(msgs), len(c.want), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			for _, p := range es {
				if p.File != "b.yaml" {
					t.Errorf("problem %v does not name the file", p)
				}
			}
		})
	}
}

func TestBootstrapValidOverlappingPlanes(t *testing.T) {
	// 2.1.4: the planes may be the same network.
	src := replace("    - 172.22.0.0/16\n    - 172.23.0.0/16", "    - 172.21.0.0/16")
	if _, err := ParseBootstrap("b.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBootstrapNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bootstrap.yaml")
	os.WriteFile(p, []byte(replace("host: 172.21.0.10", "host: 172.22.0.1")), 0o644)
	_, err := LoadBootstrap(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":11: apiServer.host:") {
		t.Fatalf("error %v does not start with file:line: field", err)
	}
}
