package pkglist

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to the packages.yaml parser: it may
// refuse them, but never panic, and every refusal must name the file.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../../packages/packages.yaml"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("p.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "p.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := l.ApplyMirrors(map[string]string{}); err != nil {
			t.Fatalf("no mirrors, yet: %v", err)
		}
	})
}
