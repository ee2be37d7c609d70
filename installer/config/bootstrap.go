// Package config reads and checks the two configuration files of a
// MetalK8s Bootstrap node: /etc/metalk8s/bootstrap.yaml (a
// BootstrapConfiguration, read only) and /etc/metalk8s/solutions.yaml (a
// SolutionsConfiguration, which `solution add` and `solution remove`
// edit in place, keeping what a person wrote in it).
//
// Both are parsed strictly (one document, no unknown or repeated fields)
// and validated in full: every problem comes back in an Errors, each
// naming file:line and its field path.
package config

import (
	"fmt"
	"net/netip"
	"os"

	"gopkg.in/yaml.v3"
)

const (
	// BootstrapPath is where bootstrap.yaml lives on the node.
	BootstrapPath = "/etc/metalk8s/bootstrap.yaml"
	// BootstrapAPIVersion and BootstrapKind identify a BootstrapConfiguration.
	BootstrapAPIVersion = "metalk8s.scality.com/v1alpha2"
	BootstrapKind       = "BootstrapConfiguration"
)

// Defaults of networks.pods and networks.services, as MetalK8s 2.x has them.
var (
	DefaultPodsNetwork     = netip.MustParsePrefix("10.233.0.0/16")
	DefaultServicesNetwork = netip.MustParsePrefix("10.96.0.0/12")
)

// Bootstrap is a checked BootstrapConfiguration.
type Bootstrap struct {
	Networks  Networks
	CA        CA
	APIServer APIServer
	Products  Products
}

// Networks are the cluster's networks. The planes may overlap each other
// (2.1.4: a node need not have distinct IPs for each plane); pods and
// services overlap neither each other nor a plane.
type Networks struct {
	ControlPlane  []netip.Prefix // at least one
	WorkloadPlane []netip.Prefix // at least one
	Pods          netip.Prefix   // DefaultPodsNetwork when not given
	Services      netip.Prefix   // DefaultServicesNetwork when not given
}

// CA configures the cluster's certificate authority.
type CA struct {
	// Minion is the Salt minion ID of the node holding the CA: the
	// Bootstrap node's name.
	Minion string
}

// APIServer says where nodes reach the Kubernetes API.
type APIServer struct {
	Host string     // an IP address or a DNS name
	Addr netip.Addr // Host parsed, when it is an IP address; else invalid
}

// Products lists the archives to deploy from.
type Products struct {
	// MetalK8s holds absolute, clean paths of MetalK8s ISOs or directories.
	MetalK8s []string
}

// LoadBootstrap reads and checks the BootstrapConfiguration at path.
func LoadBootstrap(path string) (*Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseBootstrap(path, data)
}

// ParseBootstrap checks data, read from the file name, as a
// BootstrapConfiguration. Its error is an Errors listing every problem.
func ParseBootstrap(name string, data []byte) (*Bootstrap, error) {
	root, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	c := &checker{file: name}
	if root == nil {
		c.add(nil, "", "holds no document; want a %s", BootstrapKind)
		return nil, c.err()
	}
	b := &Bootstrap{}
	top := c.mapping(root, "", "apiVersion", "kind", "networks", "ca", "apiServer", "products")
	if top == nil {
		return nil, c.err()
	}
	c.header(root, top, BootstrapAPIVersion, BootstrapKind)

	// Each field is checked on its own first; the checks across fields
	// then use only the values that passed.
	var planes []item
	var planePrefixes []netip.Prefix
	var pods, services *yaml.Node
	nets := c.required(root, top, "", "networks")
	if nets != nil {
		f := c.mapping(nets, "networks", "controlPlane", "workloadPlane", "pods", "services")
		for _, plane := range []string{"controlPlane", "workloadPlane"} {
			n := c.required(nets, f, "networks", plane)
			if n == nil {
				continue
			}
			path := "networks." + plane
			items := c.strings1N(n, path)
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				c.add(n, path, "is empty; want at least one CIDR")
			}
			seen := map[netip.Prefix]string{}
			for _, it := range items {
				p, msg := parseCIDR(it.val)
				if msg != "" {
					c.add(it.node, it.path, "%s", msg)
					continue
				}
				if first, dup := seen[p]; dup {
					c.add(it.node, it.path, "%s is listed twice (first at %s)", p, first)
					continue
				}
				seen[p] = it.path
				if plane == "controlPlane" {
					b.Networks.ControlPlane = append(b.Networks.ControlPlane, p)
				} else {
					b.Networks.WorkloadPlane = append(b.Networks.WorkloadPlane, p)
				}
				planes = append(planes, it)
				planePrefixes = append(planePrefixes, p)
			}
		}
		b.Networks.Pods, b.Networks.Services = DefaultPodsNetwork, DefaultServicesNetwork
		pods, services = f["pods"], f["services"]
		podsOK := c.network(pods, "networks.pods", &b.Networks.Pods)
		servicesOK := c.network(services, "networks.services", &b.Networks.Services)
		if servicesOK {
			c.servicesSize(services, b.Networks.Services)
		}
		// MetalK8s runs single-stack: one family for every network, that
		// of the pods network. Overlaps only exist within a family, so
		// they are checked after.
		podsName, servicesName := netName(b.Networks.Pods, pods), netName(b.Networks.Services, services)
		fam := family(b.Networks.Pods.Addr())
		if podsOK && servicesOK && family(b.Networks.Services.Addr()) != fam {
			c.add(nodeOr(services, nets), "networks.services", "%s is %s but networks.pods %s is %s; the cluster is single-stack, every network must be one family",
				servicesName, family(b.Networks.Services.Addr()), podsName, fam)
		}
		for i, it := range planes {
			if podsOK && family(planePrefixes[i].Addr()) != fam {
				c.add(it.node, it.path, "%s is %s but networks.pods %s is %s; the cluster is single-stack, every network must be one family",
					planePrefixes[i], family(planePrefixes[i].Addr()), podsName, fam)
			}
		}
		if podsOK && servicesOK && b.Networks.Pods.Overlaps(b.Networks.Services) {
			c.add(nodeOr(pods, nets), "networks.pods", "%s overlaps networks.services %s", podsName, servicesName)
		}
		for i, it := range planes {
			p := planePrefixes[i]
			if podsOK && b.Networks.Pods.Overlaps(p) {
				c.add(nodeOr(pods, nets), "networks.pods", "%s overlaps %s %s", podsName, it.path, p)
			}
			if servicesOK && b.Networks.Services.Overlaps(p) {
				c.add(nodeOr(services, nets), "networks.services", "%s overlaps %s %s", servicesName, it.path, p)
			}
		}
	}

	if ca := c.required(root, top, "", "ca"); ca != nil {
		f := c.mapping(ca, "ca", "minion")
		if n := c.required(ca, f, "ca", "minion"); n != nil {
			if s, ok := c.str(n, "ca.minion"); ok {
				if msg := checkMinion(s); msg != "" {
					c.add(n, "ca.minion", "%s", msg)
				}
				b.CA.Minion = s
			}
		}
	}

	if api := c.required(root, top, "", "apiServer"); api != nil {
		f := c.mapping(api, "apiServer", "host")
		if n := c.required(api, f, "apiServer", "host"); n != nil {
			if s, ok := c.str(n, "apiServer.host"); ok {
				addr, msg := checkHost(s)
				switch {
				case msg != "":
					c.add(n, "apiServer.host", "%s", msg)
				case addr.IsValid() && len(b.Networks.ControlPlane) > 0 && !inAny(addr, b.Networks.ControlPlane):
					c.add(n, "apiServer.host", "%s is in no network of networks.controlPlane %v; nodes reach the API over the control plane", addr, b.Networks.ControlPlane)
				}
				b.APIServer.Host, b.APIServer.Addr = s, addr
			}
		}
	}

	if prod := c.required(root, top, "", "products"); prod != nil {
		f := c.mapping(prod, "products", "metalk8s")
		if n := c.required(prod, f, "products", "metalk8s"); n != nil {
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				c.add(n, "products.metalk8s", "is empty; want at least one archive")
			}
			b.Products.MetalK8s = c.archivePaths(c.strings1N(n, "products.metalk8s"))
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return b, nil
}

// header checks apiVersion and kind.
func (c *checker) header(root *yaml.Node, top map[string]*yaml.Node, apiVersions ...string) string {
	kind := apiVersions[len(apiVersions)-1]
	apiVersions = apiVersions[:len(apiVersions)-1]
	got := ""
	if n := c.required(root, top, "", "apiVersion"); n != nil {
		if s, ok := c.str(n, "apiVersion"); ok {
			if !contains(apiVersions, s) {
				c.add(n, "apiVersion", "%q is not supported; want %q", s, apiVersions[0])
			} else {
				got = s
			}
		}
	}
	if n := c.required(root, top, "", "kind"); n != nil {
		if s, ok := c.str(n, "kind"); ok && s != kind {
			c.add(n, "kind", "%q is not supported; want %q", s, kind)
		}
	}
	return got
}

// required returns the value of a field, or reports it missing. A field
// given as null counts as missing. Fields is what mapping returned.
func (c *checker) required(parent *yaml.Node, fields map[string]*yaml.Node, path, key string) *yaml.Node {
	if fields == nil { // the parent is not a mapping, which is reported
		return nil
	}
	n := fields[key]
	if isNull(n) {
		at := parent
		if n != nil {
			at = n
		}
		c.add(at, join(path, key), "is required")
		return nil
	}
	return n
}

// network reads an optional CIDR field into *dst, which holds its default.
func (c *checker) network(n *yaml.Node, path string, dst *netip.Prefix) bool {
	if isNull(n) {
		return true
	}
	s, ok := c.str(n, path)
	if !ok {
		return false
	}
	p, msg := parseCIDR(s)
	if msg != "" {
		c.add(n, path, "%s", msg)
		return false
	}
	*dst = p
	return true
}

// servicesSize refuses a services network kube-apiserver would refuse:
// it allocates service IPs from a bitmap of at most 2^20 entries.
func (c *checker) servicesSize(n *yaml.Node, p netip.Prefix) {
	min := 12
	if p.Addr().Is6() {
		min = 108
	}
	if p.Bits() < min {
		c.add(n, "networks.services", "%s is too large; kube-apiserver takes at most a /%d %s service network", p, min, family(p.Addr()))
	}
}

// archivePaths checks archive paths and returns those that pass.
func (c *checker) archivePaths(items []item) []string {
	var out []string
	seen := map[string]string{}
	for _, it := range items {
		if err := CheckArchivePath(it.val); err != nil {
			c.add(it.node, it.path, "%v", err)
			continue
		}
		if first, dup := seen[it.val]; dup {
			c.add(it.node, it.path, "%q is listed twice (first at %s)", it.val, first)
			continue
		}
		seen[it.val] = it.path
		out = append(out, it.val)
	}
	return out
}

// netName names a pods or services network in errors, saying when it is
// the default, which the file does not show.
func netName(p netip.Prefix, n *yaml.Node) string {
	if isNull(n) {
		return p.String() + " (the default)"
	}
	return p.String()
}

func nodeOr(n, other *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return other
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (b *Bootstrap) String() string {
	return fmt.Sprintf("BootstrapConfiguration{controlPlane %v, workloadPlane %v, pods %s, services %s, minion %s, apiServer %s, metalk8s %v}",
		b.Networks.ControlPlane, b.Networks.WorkloadPlane, b.Networks.Pods, b.Networks.Services, b.CA.Minion, b.APIServer.Host, b.Products.MetalK8s)
}
