package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// parseCIDR returns the network s names, or why it is not one. A CIDR
// with host bits set ("10.0.0.5/24") is refused rather than masked: it
// usually means an address was pasted where a network was meant, and
// silently widening it would move the overlap checks.
func parseCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR (want ADDRESS/BITS, such as 10.0.0.0/16)", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("%q is an IPv4-mapped IPv6 network; write it as IPv4", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Sprintf("%q has host bits set; the network is %s", s, p.Masked())
	}
	return p, ""
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkDNSName returns why s is not a DNS name (RFC 1123: labels of
// letters, digits and inner dashes, at most 63 bytes each and 253 in
// all), or "". A last label of digits only is refused so that a mistyped
// IPv4 address ("10.0.0.300") is not taken for a name.
func checkDNSName(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > 253 {
		return fmt.Sprintf("is %d bytes long; a DNS name has at most 253", len(s))
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "is not a DNS name (labels of 1 to 63 letters, digits and inner '-', joined by '.')"
		}
		for i := 0; i < len(l); i++ {
			ch := l[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return "is not a DNS name (labels of 1 to 63 letters, digits and inner '-', joined by '.')"
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "is neither an IP address nor a DNS name (a DNS name does not end in a numeric label)"
	}
	return ""
}

// checkHost returns why s is not an address a node can reach the API
// server at (an IP address without zone or port, or a DNS name), or "".
func checkHost(s string) (netip.Addr, string) {
	if a, err := netip.ParseAddr(s); err == nil {
		switch {
		case a.Zone() != "":
			return a, fmt.Sprintf("%q has an IPv6 zone, which only means something on one host", s)
		case a.Is4In6():
			return a, fmt.Sprintf("%q is an IPv4-mapped IPv6 address; write it as IPv4", s)
		case a.IsUnspecified(), a.IsMulticast():
			return a, fmt.Sprintf("%q is not an address a node can connect to", s)
		}
		return a, ""
	}
	if strings.HasPrefix(s, "[") || strings.Contains(s, ":") {
		return netip.Addr{}, fmt.Sprintf("%q is neither an IP address nor a DNS name (no brackets or port: the port is not configured here)", s)
	}
	if msg := checkDNSName(s); msg != "" {
		return netip.Addr{}, fmt.Sprintf("%q %s", s, msg)
	}
	return netip.Addr{}, ""
}

// checkMinion returns why s cannot be the Bootstrap node's Salt minion ID,
// which MetalK8s also uses as its Kubernetes node name: a lower-case
// RFC 1123 subdomain.
func checkMinion(s string) string {
	if s != strings.ToLower(s) {
		return fmt.Sprintf("%q has upper-case letters; it is also the Kubernetes node name, which is lower case", s)
	}
	if msg := checkDNSName(s); msg != "" {
		return fmt.Sprintf("%q %s", s, msg)
	}
	return ""
}

// maxPath is PATH_MAX less the terminating NUL.
const maxPath = 4095

// CheckArchivePath returns why p cannot name an archive (an ISO or a
// directory) in a configuration file, or nil. The path must be absolute
// and clean: MetalK8s issue #3082 was iso-manager resolving relative
// paths against whatever directory it ran in, and the path ends up in
// mount units, fstab lines and nginx configuration, where "..", "//" or a
// control character would mean something else or nothing.
func CheckArchivePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("the path is empty")
	case !utf8.ValidString(p):
		return fmt.Errorf("%q is not valid UTF-8", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("%q holds a control character", p)
	case len(p) > maxPath:
		return fmt.Errorf("the path is %d bytes long, more than %d", len(p), maxPath)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q is relative; write the absolute path (relative paths depend on the directory a command runs in: MetalK8s issue #3082)", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("%q is not clean; write %q", p, filepath.Clean(p))
	case p == "/":
		return fmt.Errorf("%q is the root directory, not an archive", p)
	}
	return nil
}
