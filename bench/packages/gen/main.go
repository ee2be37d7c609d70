// Command gen writes N synthetic RPMs of varied sizes and file lists for
// the repodata benchmark, using rpmpack (rpmbuild would take minutes for a
// thousand packages). Contents are pseudo-random but seeded, so every run
// of the benchmark measures the same input.
//
//	go run ./bench/packages/gen -n 1000 -o DIR
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/google/rpmpack"
)

func main() {
	n := flag.Int("n", 1000, "number of packages")
	out := flag.String("o", "", "output directory")
	seed := flag.Uint64("seed", 1, "random seed")
	only := flag.Int("only", -1, "write only package number N (for the one-changed-package run), with a new release")
	flag.Parse()
	if *out == "" {
		log.Fatal("-o DIR is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *n; i++ {
		if *only >= 0 && i != *only {
			continue
		}
		rel := "1"
		if *only >= 0 {
			rel = "2"
		}
		if err := write(*out, i, rel, rand.New(rand.NewPCG(*seed, uint64(i)))); err != nil {
			log.Fatal(err)
		}
	}
}

func write(dir string, i int, rel string, r *rand.Rand) error {
	name := fmt.Sprintf("bench-pkg-%04d", i)
	arch := "x86_64"
	if i%4 == 0 {
		arch = "noarch"
	}
	p, err := rpmpack.NewRPM(rpmpack.RPMMetaData{
		Name: name, Version: fmt.Sprintf("%d.%d.%d", r.IntN(5), r.IntN(20), r.IntN(100)), Release: rel,
		Arch: arch, Summary: "benchmark package " + name, Description: "Synthetic package for the repodata benchmark.",
		Licence: "MIT", BuildTime: time.Unix(1700000000, 0), Compressor: "gzip",
	})
	if err != nil {
		return err
	}
	for k := 0; k < r.IntN(8); k++ {
		rel, _ := rpmpack.NewRelation(fmt.Sprintf("bench-pkg-%04d >= 0.1", r.IntN(1000)))
		p.Requires = append(p.Requires, rel)
		prov, _ := rpmpack.NewRelation(fmt.Sprintf("bench-cap-%d-%d = 1", i, k))
		p.Provides = append(p.Provides, prov)
	}
	// File counts from 1 to ~300, sizes from a few bytes to 256 KiB, so
	// both the hashing and the XML paths are exercised.
	nfiles := 1 + r.IntN(40)
	if r.IntN(10) == 0 {
		nfiles = 100 + r.IntN(200)
	}
	total := 0
	for f := 0; f < nfiles; f++ {
		size := r.IntN(2048)
		if r.IntN(20) == 0 {
			size = r.IntN(256 << 10)
		}
		total += size
		body := make([]byte, size)
		for b := range body {
			body[b] = byte(r.Uint32())
		}
		dirn := []string{"/usr/bin", "/usr/share/" + name, "/etc/" + name, "/usr/lib64/" + name}[f%4]
		p.AddFile(rpmpack.RPMFile{Name: fmt.Sprintf("%s/file-%03d", dirn, f), Body: body, Mode: 0o100644, MTime: 1700000000})
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s.%s.rpm", name, rel, arch)))
	if err != nil {
		return err
	}
	defer f.Close()
	return p.Write(f)
}
