package repogen_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
)

// FuzzIndex gives an update arbitrary index files beside valid repodata.
// The index is used only when it names the repomd.xml in place and its
// parts tile the documents that repomd.xml checksums; whatever it holds,
// the run must neither panic nor fail (a useless index means reading the
// packages or the old documents instead).
func FuzzIndex(f *testing.F) {
	src := f.TempDir()
	for i := 0; i < 40; i++ {
		writeRPM(f, src, fmt.Sprintf("p%03d", i), "1", 1+i%3)
	}
	if _, err := repogen.Generate(context.Background(), src, repogen.Options{Epoch: &epoch}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(src, "repodata", "repogen-index.txt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1,"repomd":"00","packages":[],"docs":{}}`))
	ents, _ := os.ReadDir(src)
	f.Fuzz(func(t *testing.T, ix []byte) {
		dir := t.TempDir()
		for _, e := range ents {
			if filepath.Ext(e.Name()) == ".rpm" {
				if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		os.Mkdir(filepath.Join(dir, "repodata"), 0o755)
		md, _ := os.ReadDir(filepath.Join(src, "repodata"))
		for _, e := range md {
			if e.Name() != "repogen-index.txt" {
				if err := os.Link(filepath.Join(src, "repodata", e.Name()), filepath.Join(dir, "repodata", e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		os.WriteFile(filepath.Join(dir, "repodata", "repogen-index.txt"), ix, 0o644)
		if _, err := repogen.Generate(context.Background(), dir, repogen.Options{Epoch: &epoch, Incremental: true}); err != nil {
			t.Fatal(err)
		}
	})
}
