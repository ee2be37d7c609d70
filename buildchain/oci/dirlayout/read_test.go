package dirlayout

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// fixture is a small image directory in memory: an index with two
// children, which share a config and each have a layer.
type fixture struct {
	fs                  fstest.MapFS
	config, layerA      []byte
	childA, childB, idx []byte
}

func desc(mt string, data []byte) map[string]any {
	return map[string]any{"mediaType": mt, "digest": digestOf(data), "size": len(data)}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func newFixture() *fixture {
	f := &fixture{config: []byte(`{"os":"linux","architecture":"amd64"}`), layerA: []byte("layer a"), fs: fstest.MapFS{}}
	layerB := []byte("layer b")
	image := func(layer []byte) []byte {
		return mustJSON(map[string]any{"schemaVersion": 2, "mediaType": string(MediaTypeOCIManifest),
			"config": desc("application/vnd.oci.image.config.v1+json", f.config),
			"layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)}})
	}
	f.childA, f.childB = image(f.layerA), image(layerB)
	a, b := desc(string(MediaTypeOCIManifest), f.childA), desc(string(MediaTypeOCIManifest), f.childB)
	a["platform"] = map[string]any{"os": "linux", "architecture": "amd64"}
	b["platform"] = map[string]any{"os": "linux", "architecture": "arm64", "variant": "v8"}
	f.idx = mustJSON(map[string]any{"schemaVersion": 2, "mediaType": string(MediaTypeOCIIndex), "manifests": []any{a, b}})
	put := func(name string, data []byte) { f.fs["img/"+name] = &fstest.MapFile{Data: data, Mode: 0o644} }
	put(VersionFile, []byte(Version))
	put(ManifestFile, f.idx)
	put(ChildName(digestOf(f.childA)), f.childA)
	put(ChildName(digestOf(f.childB)), f.childB)
	for _, blob := range [][]byte{f.config, f.layerA, layerB} {
		put(BlobName(digestOf(blob)), blob)
	}
	put("signature-1", []byte("not part of the layout"))
	return f
}

func TestReadIndex(t *testing.T) {
	f := newFixture()
	d, err := Read(context.Background(), f.fs, "img", Options{VerifyBlobs: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.MediaType != MediaTypeOCIIndex || len(d.Children) != 2 || len(d.Blobs) != 3 || len(d.Manifests) != 3 || len(d.BlobFiles) != 3 {
		t.Fatalf("read %+v", d)
	}
	if d.Manifests[0].Path != "img/manifest.json" || d.Manifests[0].Digest != digestOf(f.idx) {
		t.Errorf("top manifest file %+v", d.Manifests[0])
	}
	if _, err := fstest.MapFS(f.fs).Open("img/" + ManifestFile); err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(f.fs, "img/"+ManifestFile); err != nil {
		t.Fatal(err)
	}
}

// TestReadFaults: each fault is reported once, as an *Error at the file
// it concerns, with a message saying what is wrong.
func TestReadFaults(t *testing.T) {
	hexA := func(f *fixture) string { return "img/" + BlobName(digestOf(f.layerA)) }
	for _, tc := range []struct {
		name   string
		fault  func(f *fixture) string // returns the path the fault is at
		verify bool
		want   string
	}{
		{"no version", func(f *fixture) string { delete(f.fs, "img/version"); return "img/version" }, false, "only one of"},
		{"no manifest", func(f *fixture) string { delete(f.fs, "img/manifest.json"); return "img/manifest.json" }, false, "only one of"},
		{"bad version", func(f *fixture) string {
			f.fs["img/version"] = &fstest.MapFile{Data: []byte("Directory Transport Version: 2\n")}
			return "img/version"
		}, false, "Directory Transport Version: 1.1"},
		{"manifest not JSON", func(f *fixture) string {
			f.fs["img/manifest.json"] = &fstest.MapFile{Data: []byte("{")}
			return "img/manifest.json"
		}, false, "not an image manifest or index: manifest is not a JSON object"},
		{"manifest too large", func(f *fixture) string {
			f.fs["img/manifest.json"] = &fstest.MapFile{Data: make([]byte, MaxManifestSize+1)}
			return "img/manifest.json"
		}, false, "larger than"},
		{"misnamed child", func(f *fixture) string {
			f.fs["img/"+ChildName(digestOf([]byte("x")))] = f.fs["img/"+ChildName(digestOf(f.childA))]
			return "img/" + ChildName(digestOf([]byte("x")))
		}, false, "content digest"},
		{"child missing", func(f *fixture) string {
			p := "img/" + ChildName(digestOf(f.childA))
			delete(f.fs, p)
			return p
		}, false, "missing: the index lists"},
		{"nested index", func(f *fixture) string {
			inner := mustJSON(map[string]any{"schemaVersion": 2, "manifests": []any{}})
			p := "img/" + ChildName(digestOf(inner))
			f.fs[p] = &fstest.MapFile{Data: inner}
			return p
		}, false, "index inside an index"},
		{"child size differs from the index", func(f *fixture) string {
			var idx map[string]any
			json.Unmarshal(f.idx, &idx)
			idx["manifests"].([]any)[0].(map[string]any)["size"] = 1
			f.fs["img/manifest.json"] = &fstest.MapFile{Data: mustJSON(idx)}
			return "img/" + ChildName(digestOf(f.childA))
		}, false, "the index says 1"},
		{"blob listed with two sizes", func(f *fixture) string {
			var m map[string]any
			json.Unmarshal(f.childB, &m)
			m["config"].(map[string]any)["size"] = 1
			b := mustJSON(m)
			f.fs["img/"+ChildName(digestOf(b))] = &fstest.MapFile{Data: b}
			return "img/" + ChildName(digestOf(b))
		}, false, "sizes"},
		{"blob missing", func(f *fixture) string { delete(f.fs, hexA(f)); return hexA(f) }, false, "lists the blob"},
		{"blob is a link", func(f *fixture) string {
			f.fs[hexA(f)] = &fstest.MapFile{Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink}
			return hexA(f)
		}, false, "symbolic links"},
		{"blob corrupt", func(f *fixture) string {
			f.fs[hexA(f)] = &fstest.MapFile{Data: []byte("layer A")}
			return hexA(f)
		}, true, "corrupt"},
		{"blob truncated", func(f *fixture) string {
			f.fs[hexA(f)] = &fstest.MapFile{Data: []byte("layer")}
			return hexA(f)
		}, true, "5 bytes; " + ChildName(digestOf(newFixture().childA)) + " says 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			at := tc.fault(f)
			_, err := Read(context.Background(), f.fs, "img", Options{VerifyBlobs: tc.verify})
			errs := Errors(err)
			if len(errs) != 1 {
				t.Fatalf("want one error, got %v", err)
			}
			var e *Error
			if !errors.As(errs[0], &e) || e.Path != at || !strings.Contains(e.Err.Error(), tc.want) {
				t.Fatalf("want an *Error at %s containing %q, got %#v: %v", at, tc.want, errs[0], errs[0])
			}
		})
	}
}

// TestReadWithoutVerify: without VerifyBlobs a blob is only looked up by
// name (what a server needs); its content is checked when read.
func TestReadWithoutVerify(t *testing.T) {
	f := newFixture()
	p := "img/" + BlobName(digestOf(f.layerA))
	f.fs[p] = &fstest.MapFile{Data: []byte("layer A")}
	d, err := Read(context.Background(), f.fs, "img", Options{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := d.OpenBlob(digestOf(f.layerA))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("reading a corrupt blob: %v", err)
	}
	f.fs[p] = &fstest.MapFile{Data: []byte("layer aa")}
	rc, _ = d.OpenBlob(digestOf(f.layerA))
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "more than the 7 bytes") {
		t.Fatalf("reading a long blob: %v", err)
	}
}

// countingFS counts Digest calls, to check that Read asks a DigestFS.
type countingFS struct {
	fstest.MapFS
	calls int
}

func (c *countingFS) Digest(ctx context.Context, name string) (string, error) {
	c.calls++
	return fileDigest(ctx, c.MapFS, name)
}

func TestReadAsksDigestFS(t *testing.T) {
	c := &countingFS{MapFS: newFixture().fs}
	if _, err := Read(context.Background(), c, "img", Options{VerifyBlobs: true}); err != nil {
		t.Fatal(err)
	}
	if c.calls != 3 {
		t.Fatalf("%d Digest calls, want one per blob (3)", c.calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Read(ctx, newFixture().fs, "img", Options{VerifyBlobs: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestClassify(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for n, want := range map[string]Kind{
		"manifest.json": KindManifest, "version": KindVersion, h: KindBlob, h + ".manifest.json": KindChild,
		strings.ToUpper(h): KindOther, h + "0": KindOther, "signature-1": KindOther, ".tmp-x": KindOther,
	} {
		if k, _ := Classify(n); k != want {
			t.Errorf("Classify(%q) = %v, want %v", n, k, want)
		}
	}
}
