package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

func TestManifestBlobsRejectsBadDescriptors(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct{ raw, want string }{
		{`{"schemaVersion":2,"config":{"digest":"` + d + `","size":-1}}`, "negative size"},
		{`{"schemaVersion":2,"config":{"digest":"md5:abc","size":1}}`, "md5"},
		{`{"schemaVersion":2,"config":{"digest":"sha256:abc","size":1}}`, "wrong number of hex digits"},
		{`{"schemaVersion":1}`, "schema version 1"},
		{`{"schemaVersion":2,"config":{"digest":"` + d + `","size":1},"layers":[{"digest":"` + d + `","size":2}]}`, "sizes 1 and 2"},
		{`{"schemaVersion":2,"config":{"digest":"` + d + `","size":1,"urls":["http://x"]}}`, "foreign"},
		{`{`, "unexpected end"},
	} {
		if err := manifestBlobs([]byte(tc.raw), map[string]int64{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.raw, err, tc.want)
		}
	}
}

// FuzzManifest feeds manifests and indexes, as a registry would serve
// them, to everything the fetcher does with them: dirlayout's parser, blob
// collection and platform selection.
func FuzzManifest(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/manifests/*.json")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := dirlayout.ParseManifest(raw)
		if err == nil && m.MediaType.IsIndex() {
			if ds, err := selectPlatforms(&v1.IndexManifest{Manifests: m.Manifests}, []string{"linux/amd64", "linux/arm64/v8"}); err == nil {
				for _, d := range ds {
					if !ValidDigest(d.Digest.String()) {
						t.Fatalf("selected child with digest %q", d.Digest)
					}
				}
			}
			return
		}
		blobs := map[string]int64{}
		if err := manifestBlobs(raw, blobs); err != nil {
			return
		}
		for d, size := range blobs {
			if !ValidDigest(d) || size < 0 {
				t.Fatalf("accepted blob %q size %d", d, size)
			}
		}
	})
}
