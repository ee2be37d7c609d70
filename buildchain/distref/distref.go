// Package distref is the one place that holds the grammar of the OCI
// distribution spec for repository names, tags, digests and registry
// hosts. Everything that turns one of those into a path, a URL or an nginx
// location checks it here first.
package distref

import (
	"regexp"
	"strings"
)

const componentExpr = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`

var (
	componentRE = regexp.MustCompile(`^` + componentExpr + `$`)
	nameRE      = regexp.MustCompile(`^` + componentExpr + `(?:/` + componentExpr + `)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE    = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	hexRE       = regexp.MustCompile(`^[a-f0-9]{64}$`)
	hostRE      = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$`)
)

// MaxNameLength bounds a repository name, as registries do.
const MaxNameLength = 255

// ValidComponent reports whether s is one path component of a name.
func ValidComponent(s string) bool { return componentRE.MatchString(s) }

// ValidName reports whether s is a repository name, e.g. library/nginx.
func ValidName(s string) bool { return len(s) <= MaxNameLength && nameRE.MatchString(s) }

// ValidTag reports whether s is a tag.
func ValidTag(s string) bool { return tagRE.MatchString(s) }

// ValidDigest reports whether s is a sha256 digest, sha256:<64 hex>.
func ValidDigest(s string) bool { return digestRE.MatchString(s) }

// ValidHex reports whether s is the 64-hex encoded part of a sha256 digest.
func ValidHex(s string) bool { return hexRE.MatchString(s) }

// ValidHost reports whether s is a registry host[:port] (DNS name, or an
// IPv6 literal in brackets).
func ValidHost(s string) bool { return hostRE.MatchString(s) }

// SplitSource splits registry/repository and checks both parts. The first
// component is only taken as a registry when it looks like one (a dot, a
// port or localhost), as docker does; "library/nginx" has no registry.
func SplitSource(s string) (host, repo string, ok bool) {
	host, repo, found := strings.Cut(s, "/")
	if !found || !ValidHost(host) || !(strings.ContainsAny(host, ".:") || host == "localhost") || !ValidName(repo) {
		return "", "", false
	}
	return host, repo, true
}
