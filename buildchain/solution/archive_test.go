package solution

import (
	"testing"
	"testing/fstest"
)

// TestArchiveFS: the archive, as the validator hands it to dirlayout and
// registrygen, behaves as an io/fs.FS should.
func TestArchiveFS(t *testing.T) {
	a, _, err := openArchive(validTree(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := fstest.TestFS(a, ProductFile, "images/example-solution-ui/1.0.0/manifest.json", OperatorDir+"/operator.yaml"); err != nil {
		t.Fatal(err)
	}
}
