package solution

import (
	"context"
	"testing"
	"testing/fstest"
)

// TestArchiveFS: the stop-gap adapter behaves as an io/fs.FS should.
func TestArchiveFS(t *testing.T) {
	a, _, err := openArchive(validTree(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	v := &validator{ctx: context.Background(), a: a, byPath: map[string]node{}, hashed: map[string]string{}}
	for _, n := range a.nodes() {
		v.byPath[n.Path] = n
	}
	if err := fstest.TestFS(newArchiveFS(v), ProductFile, "images/example-solution-ui/1.0.0/manifest.json", OperatorDir+"/operator.yaml"); err != nil {
		t.Fatal(err)
	}
}
