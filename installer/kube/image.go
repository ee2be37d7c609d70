package kube

import (
	"fmt"
	"path"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// ImageRef is an image reference taken apart.
type ImageRef struct {
	Host   string // registry host[:port], "" when the reference has none
	Repo   string // repository path, e.g. example-solution-1.0.0/example-solution-ui
	Tag    string
	Digest string
}

// ParseImageRef parses and checks an image reference with the grammar of
// the distribution spec (buildchain/distref): [host[:port]/]path[:tag][@digest].
// The first component is a host only when it looks like one (a dot, a
// port, or localhost), as docker reads it. A reference with neither tag
// nor digest is refused: it would mean "latest", which no Solution ships
// by that name on purpose.
func ParseImageRef(ref string) (ImageRef, error) {
	var r ImageRef
	rest := ref
	if i := strings.Index(rest, "@"); i >= 0 {
		rest, r.Digest = rest[:i], rest[i+1:]
		if err := distref.CheckDigest(r.Digest); err != nil {
			return r, fmt.Errorf("image %q: %w", ref, err)
		}
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		rest, r.Tag = rest[:i], rest[i+1:]
		if err := distref.CheckTag(r.Tag); err != nil {
			return r, fmt.Errorf("image %q: %w", ref, err)
		}
	}
	if host, repo, found := strings.Cut(rest, "/"); found && (strings.ContainsAny(host, ".:") || host == "localhost") {
		if !distref.ValidHost(host) {
			return r, fmt.Errorf("image %q: %q is not a registry host[:port]", ref, host)
		}
		r.Host, rest = host, repo
	}
	if err := distref.CheckName(rest); err != nil {
		return r, fmt.Errorf("image %q: %w", ref, err)
	}
	r.Repo = rest
	if r.Tag == "" && r.Digest == "" {
		return r, fmt.Errorf("image %q has neither tag nor digest; name the version the Solution ships", ref)
	}
	return r, nil
}

// Name is the image's own name: the last component of its repository
// path. The registry and prefix in front of it are MetalK8s's to choose
// (12.2.4: operators must not rely on them).
func (r ImageRef) Name() string { return path.Base(r.Repo) }

// String formats the reference back.
func (r ImageRef) String() string {
	s := r.Repo
	if r.Host != "" {
		s = r.Host + "/" + s
	}
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// RewriteImage points an image reference at the Solution's repository of
// the MetalK8s registry: <registry>/<repository>/<image>:<tag>[@digest],
// where repository is the Solution's <name>-<version>, the prefix its
// registry-config.inc.j2 serves it under.
func RewriteImage(ref, registry, repository string) (string, error) {
	if !distref.ValidHost(registry) {
		return "", fmt.Errorf("registry endpoint %q is not a host[:port]", registry)
	}
	if !distref.ValidComponent(repository) {
		return "", fmt.Errorf("repository %q is not one lower-case path component", repository)
	}
	r, err := ParseImageRef(ref)
	if err != nil {
		return "", err
	}
	out := ImageRef{Host: registry, Repo: repository + "/" + r.Name(), Tag: r.Tag, Digest: r.Digest}
	if !distref.ValidName(out.Repo) {
		return "", fmt.Errorf("image %q: %s is too long a repository name", ref, out.Repo)
	}
	return out.String(), nil
}
