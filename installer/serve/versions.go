package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/salttree"
)

// VersionsFile is where the MetalK8s ISO holds its version data: the
// shipped repositories (with their keys) and images (with their upstream
// sources), as buildchain/salttree writes it.
const VersionsFile = "salt/metalk8s/versions.json"

// maxVersionsSize bounds what is read of versions.json: the real file is a
// few tens of KiB.
const maxVersionsSize = 8 << 20

// Upstream is one image of an archive as its upstream registry names it:
// containerd asks the mirror for Host/Path by digest or tag, the archive
// serves it as Name.
type Upstream struct {
	Name    string // the repository under images/ (and under the archive's prefix)
	Version string // the tag
	Digest  string // of the manifest or index
	Host    string // upstream registry host[:port], e.g. quay.io
	Path    string // repository path on that host, e.g. calico/node
}

// RepoInfo is one shipped yum repository and the key files beside it
// (names relative to packages/redhat/).
type RepoInfo struct {
	Name    string
	GPGKeys []string
	Signed  bool // repo_gpgcheck: the repodata is signed
}

// Versions is what serving needs of versions.json, checked.
type Versions struct {
	Upstreams    []Upstream // sorted by Host, Path
	Repositories []RepoInfo // sorted by Name
}

// keyRE-like checks: key and repository names end up in URLs and nginx
// paths, so they keep to a small safe alphabet.
func validFileName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(s, ".")
}

// ParseVersions reads versions.json (file names it in errors). Every
// value that reaches a config is checked: image names, tags, digests and
// sources against the distribution grammar, repository and key names
// against a file-name alphabet. Unknown fields are refused, as the file is
// the buildchain's own output and a stranger one is not what it wrote.
func ParseVersions(file string, data []byte) (*Versions, error) {
	if len(data) > maxVersionsSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", file, len(data), maxVersionsSize)
	}
	var v salttree.Versions
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the JSON object", file)
	}
	out := &Versions{}
	keys := make([]string, 0, len(v.Images))
	for k := range v.Images {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		im := v.Images[k]
		where := fmt.Sprintf("%s: images.%s", file, k)
		if im.Name != k {
			return nil, fmt.Errorf("%s: name %q differs from its key", where, im.Name)
		}
		if !distref.ValidName(im.Name) {
			return nil, fmt.Errorf("%s: name %q is not a repository name", where, im.Name)
		}
		if !distref.ValidTag(im.Version) || strings.Contains(im.Version, "..") {
			return nil, fmt.Errorf("%s.version: %q is not a tag", where, im.Version)
		}
		if !distref.ValidDigest(im.Digest) {
			return nil, fmt.Errorf("%s.digest: %q is not a sha256 digest", where, im.Digest)
		}
		if im.SourceDigest != "" && !distref.ValidDigest(im.SourceDigest) {
			return nil, fmt.Errorf("%s.source_digest: %q is not a sha256 digest", where, im.SourceDigest)
		}
		host, path, ok := distref.SplitSource(im.Source)
		if !ok {
			return nil, fmt.Errorf("%s.source: %q is not registry-host/repository", where, im.Source)
		}
		host, path = canonicalUpstream(host, path)
		out.Upstreams = append(out.Upstreams, Upstream{Name: im.Name, Version: im.Version, Digest: im.Digest, Host: host, Path: path})
	}
	sort.SliceStable(out.Upstreams, func(i, j int) bool {
		a, b := out.Upstreams[i], out.Upstreams[j]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Path < b.Path
	})
	for i := 1; i < len(out.Upstreams); i++ {
		a, b := out.Upstreams[i-1], out.Upstreams[i]
		if a.Host == b.Host && a.Path == b.Path && a.Name != b.Name {
			return nil, fmt.Errorf("%s: images %s and %s both come from %s/%s: a mirror cannot serve both under that name", file, a.Name, b.Name, a.Host, a.Path)
		}
	}
	names := make([]string, 0, len(v.Repositories))
	for k := range v.Repositories {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		r := v.Repositories[n]
		where := fmt.Sprintf("%s: repositories.%s", file, n)
		if !validFileName(n) {
			return nil, fmt.Errorf("%s: repository name outside [A-Za-z0-9._-]", where)
		}
		ri := RepoInfo{Name: n, Signed: r.Signed}
		for i, k := range r.GPGKeys {
			if !validFileName(k) {
				return nil, fmt.Errorf("%s.gpgkeys[%d]: %q is not a file name of [A-Za-z0-9._-]", where, i, k)
			}
			ri.GPGKeys = append(ri.GPGKeys, k)
		}
		if len(ri.GPGKeys) == 0 {
			return nil, fmt.Errorf("%s.gpgkeys: empty; the repository files turn gpgcheck on and need a key", where)
		}
		out.Repositories = append(out.Repositories, ri)
	}
	return out, nil
}

// canonicalUpstream returns the host and path containerd uses for a
// reference: Docker Hub's official images live under library/, and its
// API is not at docker.io itself (see hostsServer).
func canonicalUpstream(host, path string) (string, string) {
	if host == "docker.io" || host == "index.docker.io" {
		host = "docker.io"
		if !strings.Contains(path, "/") {
			path = "library/" + path
		}
	}
	return host, path
}
