// Package sizereport says where the bytes of an ISO go: per image, the
// bytes only it holds and the bytes it shares with other images (a blob
// two images reference is stored once); per repository, its total; and
// the sum of the ISO root's files against the ISO's size.
package sizereport

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

// Image is one image's bytes. Unique + Shared is what the image would
// weigh alone.
type Image struct {
	Name   string `json:"name"` // images/<name>/<version>
	Unique int64  `json:"unique_bytes"`
	Shared int64  `json:"shared_bytes"`
}

// Repo is one package repository's total, repodata included.
type Repo struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// Report is the size report; it is the "sizes" section of
// build-report.json.
type Report struct {
	Images []Image `json:"images"`
	Repos  []Repo  `json:"repos"`
	// ImagesStored is the images' bytes once each shared blob is counted
	// once: what the ISO holds for them.
	ImagesStored int64 `json:"images_stored_bytes"`
	// Inputs is the sum of the sizes of every file of the ISO root, each
	// path counted (hard links and equal files as often as they appear).
	Inputs   int64 `json:"inputs_bytes"`
	InputsN  int   `json:"inputs_files"`
	ISO      int64 `json:"iso_bytes"`
	Overhead int64 `json:"iso_minus_inputs_bytes"` // negative when the ISO shares files' data
}

// Build measures the ISO root fsys and the ISO's size.
func Build(ctx context.Context, fsys fs.FS, isoSize int64) (*Report, error) {
	r := &Report{ISO: isoSize}
	type img struct {
		name  string
		blobs map[string]int64
	}
	var imgs []img
	users := map[string]int{}
	sizes := map[string]int64{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if !strings.HasPrefix(p, "images/") {
				return nil
			}
			entries, err := fs.ReadDir(fsys, p)
			if err != nil {
				return err
			}
			if !dirlayout.IsImageDir(entries) {
				return nil
			}
			dir, err := dirlayout.ReadEntries(ctx, fsys, p, entries, dirlayout.Options{})
			if err != nil {
				return fmt.Errorf("image %s: %w", p, err)
			}
			blobs := map[string]int64{}
			for dg, n := range dir.Blobs {
				blobs[dg] = n
			}
			for _, m := range dir.Manifests {
				blobs[m.Digest] = m.Size
			}
			for dg, n := range blobs {
				users[dg]++
				sizes[dg] = n
			}
			imgs = append(imgs, img{strings.TrimPrefix(p, "images/"), blobs})
			// The files of the image directory still count as inputs.
		}
		if d.IsDir() {
			return nil
		}
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			return err
		}
		r.Inputs += fi.Size()
		r.InputsN++
		if rest, ok := strings.CutPrefix(p, "packages/redhat/"); ok && strings.Contains(rest, "/") {
			name := rest[:strings.IndexByte(rest, '/')]
			if n := len(r.Repos); n == 0 || r.Repos[n-1].Name != name {
				r.Repos = append(r.Repos, Repo{Name: name})
			}
			r.Repos[len(r.Repos)-1].Bytes += fi.Size()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, im := range imgs {
		x := Image{Name: im.name}
		for dg, n := range im.blobs {
			if users[dg] > 1 {
				x.Shared += n
			} else {
				x.Unique += n
			}
		}
		r.Images = append(r.Images, x)
	}
	for _, n := range sizes {
		r.ImagesStored += n
	}
	sort.Slice(r.Images, func(i, j int) bool { return r.Images[i].Name < r.Images[j].Name })
	r.Overhead = r.ISO - r.Inputs
	return r, nil
}

// Print writes the report for people, at the end of a build.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintln(w, "sizes:")
	for _, im := range r.Images {
		fmt.Fprintf(w, "  image %s: %s unique, %s shared\n", path.Clean(im.Name), oci.HumanBytes(im.Unique), oci.HumanBytes(im.Shared))
	}
	fmt.Fprintf(w, "  images stored once: %s\n", oci.HumanBytes(r.ImagesStored))
	for _, rp := range r.Repos {
		fmt.Fprintf(w, "  repo %s: %s\n", rp.Name, oci.HumanBytes(rp.Bytes))
	}
	fmt.Fprintf(w, "  ISO %s for %s of inputs in %d files (%+d bytes)\n", oci.HumanBytes(r.ISO), oci.HumanBytes(r.Inputs), r.InputsN, r.Overhead)
}
