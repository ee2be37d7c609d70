package completeness

import (
	"strings"
	"testing"
)

// FuzzManifestRefs: any YAML, valid or not, gives refs or an error naming
// the file, never a panic; every ref it returns is in the input.
func FuzzManifestRefs(f *testing.F) {
	f.Add([]byte("kind: Pod\nspec:\n  containers:\n    - image: docker.io/library/redis:5.0\n"))
	f.Add([]byte("a: 1\n---\nimage: metalk8s-2.0.0-dev/nginx:1.0\n---\n"))
	re := refPattern([]string{"docker.io", "k8s.gcr.io"}, "metalk8s-2.0.0-dev/")
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, err := manifestRefs("m.yaml", data, re)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "m.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range refs {
			if r == "" {
				t.Fatal("empty reference")
			}
		}
	})
}
