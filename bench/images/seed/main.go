// Command seed fills a registry with the benchmark's image set: 12 images
// of about 128 MiB each (1.5 GiB in all), where about 30% of the bytes are
// layers shared between images, and writes the images.yaml that names them
// under upstream-looking sources (docker.io/bench/<name>).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layer makes a gzip layer of n random bytes. Stored (level 0) gzip keeps
// the seeding fast; the blob is still a valid, incompressible layer.
func layer(rng *rand.Rand, n int) v1.Layer {
	data := make([]byte, n)
	rng.Read(data)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	zw.Close()
	return static.NewLayer(buf.Bytes(), types.DockerLayer)
}

func main() {
	registry := flag.String("registry", "", "host:port of the registry to fill")
	out := flag.String("o", "images.yaml", "images list to write")
	count := flag.Int("images", 12, "number of images")
	mib := flag.Int("mib", 128, "approximate size of one image, MiB")
	flag.Parse()
	if *registry == "" {
		log.Fatal("-registry is required")
	}
	rng := rand.New(rand.NewSource(1))
	size := *mib << 20
	// 36% of each image in one of two shared bases: 10 of 12 copies are
	// duplicates, so 30% of all bytes are shared.
	shared := size * 36 / 100
	bases := []v1.Layer{layer(rng, shared), layer(rng, shared)}
	var list bytes.Buffer
	var logical, unique int64
	for i := 0; i < *count; i++ {
		img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
		layers := []v1.Layer{bases[i%2]}
		for j := 0; j < 3; j++ {
			layers = append(layers, layer(rng, (size-shared)/3))
		}
		img, err := mutate.AppendLayers(img, layers...)
		if err != nil {
			log.Fatal(err)
		}
		repo := fmt.Sprintf("bench/image%02d", i)
		ref, err := name.ParseReference(*registry+"/"+repo+":1.0", name.Insecure)
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			log.Fatal(err)
		}
		d, _ := img.Digest()
		fmt.Fprintf(&list, "- name: image%02d\n  version: \"1.0\"\n  source: docker.io/%s\n  digest: %s\n", i, repo, d)
		for j, l := range layers {
			s, _ := l.Size()
			logical += s
			if j > 0 || i < 2 {
				unique += s
			}
		}
	}
	if err := os.WriteFile(*out, list.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("seeded %d images: %d layer bytes in all, %d unique (%.0f%% shared)\n", *count, logical, unique, 100*float64(logical-unique)/float64(logical))
}
