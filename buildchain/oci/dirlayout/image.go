package dirlayout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageFromFS reads and checks the image directory dir of fsys (blobs
// are verified as they are read) and returns it as a v1.Image; manifest.json
// must be an image manifest.
func ImageFromFS(ctx context.Context, fsys fs.FS, dir string) (v1.Image, error) {
	d, err := Read(ctx, fsys, dir, Options{})
	if err != nil {
		return nil, err
	}
	return d.Image()
}

// IndexFromFS is ImageFromFS for a directory whose manifest.json is an index.
func IndexFromFS(ctx context.Context, fsys fs.FS, dir string) (v1.ImageIndex, error) {
	d, err := Read(ctx, fsys, dir, Options{})
	if err != nil {
		return nil, err
	}
	return d.ImageIndex()
}

// Image returns the directory's image; manifest.json must be an image
// manifest. Every blob read through it is checked against its digest and
// size.
func (d *Dir) Image() (v1.Image, error) {
	if d.Top == nil {
		return nil, &Error{d.Path, errors.New("no image manifest was read")}
	}
	if d.MediaType.IsIndex() {
		return nil, &Error{d.Path, fmt.Errorf("%s is an index (%s), not an image manifest", ManifestFile, d.MediaType)}
	}
	return partial.CompressedToImage(&compressedImage{d: d, raw: d.Manifest, m: d.Top})
}

// ImageIndex returns the directory's index; manifest.json must be an
// index, and its images are the child manifests beside it.
func (d *Dir) ImageIndex() (v1.ImageIndex, error) {
	if d.Top == nil || !d.MediaType.IsIndex() {
		return nil, &Error{d.Path, fmt.Errorf("%s is not an index", ManifestFile)}
	}
	return &index{d: d}, nil
}

type compressedImage struct {
	d   *Dir
	raw []byte
	m   *ParsedManifest
}

func (c *compressedImage) RawManifest() ([]byte, error)        { return c.raw, nil }
func (c *compressedImage) MediaType() (types.MediaType, error) { return c.m.MediaType, nil }
func (c *compressedImage) RawConfigFile() ([]byte, error) {
	rc, err := c.d.openVerified(c.m.Config.Digest.String(), c.m.Config.Size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (c *compressedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == c.m.Config.Digest {
		return &compressedLayer{d: c.d, desc: *c.m.Config}, nil
	}
	for _, l := range c.m.Layers {
		if l.Digest == h {
			return &compressedLayer{d: c.d, desc: l}, nil
		}
	}
	return nil, &Error{c.d.Path, fmt.Errorf("the image has no layer %s", h)}
}

type compressedLayer struct {
	d    *Dir
	desc v1.Descriptor
}

func (l *compressedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *compressedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *compressedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *compressedLayer) Compressed() (io.ReadCloser, error) {
	if len(l.desc.URLs) > 0 {
		return nil, &Error{l.d.Path, fmt.Errorf("layer %s is foreign (urls %v): not in a dir: layout", l.desc.Digest, l.desc.URLs)}
	}
	return l.d.openVerified(l.desc.Digest.String(), l.desc.Size)
}

type index struct{ d *Dir }

func (x *index) MediaType() (types.MediaType, error) { return x.d.MediaType, nil }
func (x *index) Digest() (v1.Hash, error)            { return v1.NewHash(digestOf(x.d.Manifest)) }
func (x *index) Size() (int64, error)                { return int64(len(x.d.Manifest)), nil }
func (x *index) RawManifest() ([]byte, error)        { return x.d.Manifest, nil }
func (x *index) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(x.d.Manifest))
}

func (x *index) Image(h v1.Hash) (v1.Image, error) {
	raw, ok := x.d.Children[h.String()]
	if !ok {
		return nil, &Error{x.d.Path, fmt.Errorf("the index has no manifest %s in the directory", h)}
	}
	m, err := ParseChild(raw)
	if err != nil {
		return nil, &Error{x.d.Path + "/" + ChildName(h.String()), err}
	}
	return partial.CompressedToImage(&compressedImage{d: x.d, raw: raw, m: m})
}

func (x *index) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, &Error{x.d.Path + "/" + ChildName(h.String()), ErrNestedIndex}
}
