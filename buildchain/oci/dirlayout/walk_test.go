package dirlayout

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
)

func TestWalk(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, p := range []string{"images/b/2.0", "images/a/1.0", "images/team/c/3.0"} {
		fsys[p+"/"+VersionFile] = &fstest.MapFile{Data: []byte(Version)}
		fsys[p+"/"+ManifestFile] = &fstest.MapFile{Data: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`)}
		fsys[p+"/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"] = &fstest.MapFile{Data: []byte("{}")}
	}
	fsys["images/README"] = &fstest.MapFile{Data: []byte("not an image")}
	var got []string
	if err := Walk(context.Background(), fsys, "images", Options{VerifyBlobs: true}, func(d *Dir) error {
		got = append(got, d.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := "[images/a/1.0 images/b/2.0 images/team/c/3.0]"; fmt.Sprint(got) != want {
		t.Errorf("walked %s, want %s", got, want)
	}
	if err := Walk(context.Background(), fsys, "missing", Options{}, func(*Dir) error { t.Error("called"); return nil }); err != nil {
		t.Errorf("missing root: %v", err)
	}
	stop := errors.New("stop")
	if err := Walk(context.Background(), fsys, "images", Options{}, func(*Dir) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: %v", err)
	}
	fsys["images/a/1.0/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"] = &fstest.MapFile{Data: []byte("{ }")}
	if err := Walk(context.Background(), fsys, "images", Options{VerifyBlobs: true}, func(*Dir) error { return nil }); err == nil {
		t.Error("a blob that does not match its digest was walked over")
	}
}
