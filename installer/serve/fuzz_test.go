package serve

import (
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// FuzzParseVersions: whatever versions.json holds, ParseVersions either
// refuses it or returns only values that are safe in the nginx config,
// the rewrite regex and the hosts.toml: names, tags and digests of the
// distribution grammar, hosts of the host grammar, file names of a small
// alphabet. Seeds: testdata/fuzz/FuzzParseVersions.
func FuzzParseVersions(f *testing.F) {
	f.Add([]byte(`{"metalk8s":{"version":"2.0.0"},"packages":{},"images":{"coredns":{"name":"coredns","version":"1.3.1","digest":"sha256:` + strings.Repeat("a", 64) + `","source":"k8s.gcr.io/coredns"}},"repositories":{"metalk8s-epel":{"gpgkeys":["RPM-GPG-KEY-metalk8s-metalk8s-epel_1"],"signed":false}},"registries":["k8s.gcr.io"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVersions("versions.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "versions.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, u := range v.Upstreams {
			if !distref.ValidName(u.Name) || !distref.ValidName(u.Path) || !distref.ValidHost(u.Host) ||
				!distref.ValidTag(u.Version) || !distref.ValidDigest(u.Digest) || strings.Contains(u.Version, "..") {
				t.Fatalf("unsafe upstream accepted: %+v", u)
			}
			if strings.ContainsAny(u.Host+u.Path+u.Name, "\"'{}; \t\n$\\#") {
				t.Fatalf("config syntax in %+v", u)
			}
		}
		for _, r := range v.Repositories {
			if len(r.GPGKeys) == 0 {
				t.Fatalf("repository %s without key accepted", r.Name)
			}
			for _, s := range append([]string{r.Name}, r.GPGKeys...) {
				if !validFileName(s) || strings.Contains(s, "/") {
					t.Fatalf("unsafe file name %q accepted", s)
				}
			}
		}
	})
}
