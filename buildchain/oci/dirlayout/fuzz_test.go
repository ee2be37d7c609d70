package dirlayout

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// FuzzSniffMediaType feeds manifest files, outside input, to the parser
// that every reader of the layout goes through. Seeds are below and in
// testdata/fuzz/FuzzSniffMediaType (moved here from registrygen with the
// parser). Run with:
//
//	go test ./buildchain/oci/dirlayout -run '^$' -fuzz '^FuzzSniffMediaType$' -fuzztime 2m
func FuzzSniffMediaType(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"` + zeroDigest + `"},"layers":[{"digest":"` + zeroDigest + `"}]}`,
		`{"schemaVersion":2,"config":{"digest":"` + zeroDigest + `"},"layers":[]}`,
		`{"schemaVersion":2,"manifests":[{"digest":"` + zeroDigest + `"}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`,
		`{"schemaVersion":2,"MediaType":"x","config":{}}`,
		`{"schemaVersion":1}`, `null`, `[]`, `{"schemaVersion":2}{}`,
		`{"schemaVersion":2,"config":{"digest":"` + zeroDigest + `"},"layers":[{"digest":"sha256:x","urls":["http://x"]}]}`,
		`{"schemaVersion":2,"config":{"digest":"` + zeroDigest + `","size":-1}}`,
		`{"schemaVersion":2,"config":{"digest":"` + zeroDigest + `","size":1},"layers":[{"digest":"` + zeroDigest + `","size":2}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		switch m.MediaType {
		case MediaTypeDockerManifest, MediaTypeOCIManifest:
			if m.Config == nil || len(m.Blobs()) == 0 || len(m.Manifests) != 0 {
				t.Fatalf("image manifest without a config: %+v", m)
			}
		case MediaTypeDockerManifestList, MediaTypeOCIIndex:
			if m.Config != nil || len(m.Layers) != 0 {
				t.Fatalf("index with blobs: %+v", m)
			}
		default:
			t.Fatalf("media type %q accepted", m.MediaType)
		}
		blobs := map[string]int64{}
		if err := AddBlobs(m, blobs); err != nil {
			t.Fatalf("AddBlobs on one manifest: %v", err)
		}
		all := append(append([]v1.Descriptor{}, m.Layers...), m.Manifests...)
		if m.Config != nil {
			all = append(all, *m.Config)
		}
		for _, d := range all {
			if !distref.ValidDigest(d.Digest.String()) || d.Size < 0 {
				t.Fatalf("descriptor %s size %d accepted", d.Digest, d.Size)
			}
		}
	})
}
