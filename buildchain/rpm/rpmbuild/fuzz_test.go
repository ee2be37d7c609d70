package rpmbuild

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to the spec parser: it may refuse
// them, but never panic, and every refusal must name the file.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"metalk8s-sosreport.yaml", "metalk8s-installer.yaml"} {
		if data, err := os.ReadFile("../../../packages/" + name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("spec.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "spec.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		s.FileName()
	})
}
