package dirlayout

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// dirStore is a Store in a directory, as the fetcher's cache is.
type dirStore string

func (s dirStore) Path(d string) string { return filepath.Join(string(s), BlobName(d)) }
func (s dirStore) Has(d string, size int64) bool {
	st, err := os.Stat(s.Path(d))
	return err == nil && (size < 0 || st.Size() == size)
}
func (s dirStore) PutBytes(d string, data []byte) error { return os.WriteFile(s.Path(d), data, 0o644) }

// contentsOf stores an image's blobs and returns its Contents.
func contentsOf(t *testing.T, s dirStore, img v1.Image, c *Contents) {
	t.Helper()
	raw, _ := img.RawManifest()
	m, err := ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.RawConfigFile()
	if err := s.PutBytes(digestOf(cfg), cfg); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Compressed()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if err := s.PutBytes(digestOf(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := AddBlobs(m, c.Blobs); err != nil {
		t.Fatal(err)
	}
}

// TestWriteReadRoundTrip writes an image and an index, reads them back as
// go-containerregistry images, which validate.Image checks blob by blob,
// and has skopeo, an independent reader, copy what was written.
func TestWriteReadRoundTrip(t *testing.T) {
	store := dirStore(t.TempDir())
	out := t.TempDir()

	img, err := random.Image(8<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	single := &Contents{Manifest: raw, MediaType: mt, Blobs: map[string]int64{}}
	contentsOf(t, store, img, single)
	if err := Write(filepath.Join(out, "single"), single, store); err != nil {
		t.Fatal(err)
	}

	idx, err := random.Index(4<<10, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iraw, _ := idx.RawManifest()
	imt, _ := idx.MediaType()
	multi := &Contents{Manifest: iraw, MediaType: imt, Children: map[string][]byte{}, Blobs: map[string]int64{}}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		child, _ := idx.Image(d.Digest)
		craw, _ := child.RawManifest()
		multi.Children[d.Digest.String()] = craw
		contentsOf(t, store, child, multi)
	}
	if err := Write(filepath.Join(out, "multi"), multi, store); err != nil {
		t.Fatal(err)
	}

	fsys := os.DirFS(out)
	got, err := ImageFromFS(context.Background(), fsys, "single")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	if want, _ := img.Digest(); func() v1.Hash { h, _ := got.Digest(); return h }() != want {
		t.Fatal("digest changed")
	}
	gotIdx, err := IndexFromFS(context.Background(), fsys, "multi")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(gotIdx); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	if _, err := ImageFromFS(context.Background(), fsys, "multi"); err == nil {
		t.Fatal("an index read as an image")
	}
	for _, dir := range []string{"single", "multi"} {
		if _, err := Read(context.Background(), fsys, dir, Options{VerifyBlobs: true}); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}

	// skopeo verifies every digest it copies; what it writes back must
	// read the same through dirlayout.
	skopeo := testenv.Need(t, "skopeo")[0]
	for _, dir := range []string{"single", "multi"} {
		dst := filepath.Join(t.TempDir(), dir)
		cmd := exec.Command(skopeo, "copy", "--all", "--preserve-digests", "--insecure-policy", "dir:"+filepath.Join(out, dir), "dir:"+dst)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", dir, err, b)
		}
		d, err := Read(context.Background(), os.DirFS(dst), ".", Options{VerifyBlobs: true})
		if err != nil {
			t.Fatalf("skopeo's copy of %s: %v", dir, err)
		}
		want, _ := os.ReadFile(filepath.Join(out, dir, ManifestFile))
		if string(d.Manifest) != string(want) {
			t.Errorf("skopeo's copy of %s has another manifest.json", dir)
		}
	}
}

func TestWriteRefusesBadDigests(t *testing.T) {
	store := dirStore(t.TempDir())
	for _, c := range []*Contents{
		{Manifest: []byte("{}"), Blobs: map[string]int64{"sha256:../../etc": 1}},
		{Manifest: []byte("{}"), Children: map[string][]byte{"../x": nil}},
		{Manifest: []byte("{}"), Blobs: map[string]int64{digestOf([]byte("absent")): 6}},
	} {
		dst := filepath.Join(t.TempDir(), "img")
		if err := Write(dst, c, store); err == nil {
			t.Errorf("%+v written", c)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%+v: a failed Write left %s", c, dst)
		}
	}
}
