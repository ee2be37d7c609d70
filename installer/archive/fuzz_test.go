package archive

import (
	"path"
	"strings"
	"testing"
)

// FuzzParseProduct: product.txt and the volume ID come from the archive.
// Whatever is accepted gives a mount point one element below MountRoot,
// and a volume ID equal to the one given.
func FuzzParseProduct(f *testing.F) {
	f.Add([]byte("NAME=MetalK8s\nVERSION=2.0.0\n"), "MetalK8s 2.0.0")
	f.Add([]byte("NAME='Example Sol'\nVERSION=1.0.0-dev\nREQUIRE_METALK8S='>=2.0'\n"), "Example Sol 1.0.0-dev")
	f.Add([]byte("NAME=a\nVERSION=../x\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, vol string) {
		p, err := ParseProduct("product.txt", data, vol)
		if err != nil {
			return
		}
		id := p.ID()
		mp := path.Join(MountRoot, id)
		if path.Dir(mp) != MountRoot || strings.ContainsAny(id, "/ \n") || id == "." || id == ".." {
			t.Fatalf("ID %q escapes %s", id, MountRoot)
		}
		if vol != "" && p.VolumeID() != vol {
			t.Fatalf("volume ID %q accepted for %q", vol, p.VolumeID())
		}
	})
}
