package oci

import (
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// DedupStats is what a de-duplication pass found.
type DedupStats struct {
	Files       int   // regular files seen
	LogicalSize int64 // their sizes added up
	UniqueSize  int64 // bytes on disk once identical files share one inode
	Linked      int   // files this pass turned into hard links
}

// Saved is the number of bytes hard links save.
func (s DedupStats) Saved() int64 { return s.LogicalSize - s.UniqueSize }

// Dedup replaces identical regular files under root by hard links to one
// of them, as `hardlink -c` does. Files already sharing an inode cost
// nothing; only same-size files on different inodes are hashed, so a tree
// that is already de-duplicated is checked without reading any content,
// and only those whose first 64 KiB are equal are read whole.
func Dedup(root string) (DedupStats, error) {
	type file struct {
		path string
		ino  uint64
		dev  uint64
		mode fs.FileMode
	}
	var st DedupStats
	bySize := map[int64][]file{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sys := info.Sys().(*syscall.Stat_t)
		st.Files++
		st.LogicalSize += info.Size()
		bySize[info.Size()] = append(bySize[info.Size()], file{p, sys.Ino, uint64(sys.Dev), info.Mode().Perm()})
		return nil
	})
	if err != nil {
		return st, err
	}
	sizes := make([]int64, 0, len(bySize))
	for s := range bySize {
		sizes = append(sizes, s)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	for _, size := range sizes {
		files := bySize[size]
		// One representative per inode: links already made are free.
		type inode struct{ dev, ino uint64 }
		seen := map[inode]bool{}
		var reps []file
		for _, f := range files {
			k := inode{f.dev, f.ino}
			if !seen[k] {
				seen[k] = true
				reps = append(reps, f)
			}
		}
		if len(reps) == 1 || size == 0 {
			st.UniqueSize += size * int64(len(reps))
			continue
		}
		// Files that differ in their first bytes differ: only those that
		// agree there are read whole. Layers of equal size (the same
		// generator, stored blocks of random data) are then told apart
		// without reading gigabytes.
		byPrefix := map[[32]byte][]file{}
		var prefixes [][32]byte
		for _, f := range reps {
			sum, err := hashPrefix(f.path, dedupPrefix)
			if err != nil {
				return st, err
			}
			if _, ok := byPrefix[sum]; !ok {
				prefixes = append(prefixes, sum)
			}
			byPrefix[sum] = append(byPrefix[sum], f)
		}
		var candidates []file
		for _, p := range prefixes {
			if g := byPrefix[p]; len(g) == 1 {
				st.UniqueSize += size
			} else {
				candidates = append(candidates, g...)
			}
		}
		byHash := map[[32]byte]file{}
		for _, f := range candidates {
			sum, err := fullHash(f.path)
			if err != nil {
				return st, err
			}
			first, dup := byHash[sum]
			if !dup || first.mode != f.mode || first.dev != f.dev {
				if !dup {
					byHash[sum] = f
				}
				st.UniqueSize += size
				continue
			}
			// Every other path of this inode moves to the first copy too.
			for _, g := range files {
				if g.ino == f.ino && g.dev == f.dev {
					if err := fsutil.LinkOrCopy(first.path, g.path); err != nil {
						return st, err
					}
					st.Linked++
				}
			}
		}
	}
	return st, nil
}

// dedupPrefix is how much of each same-size file Dedup compares before
// it reads the files whole.
const dedupPrefix = 64 << 10

// fullHash is hashFile; tests count its calls.
var fullHash = hashFile

func hashFile(p string) ([32]byte, error) { return hashPrefix(p, -1) }

// hashPrefix is the SHA-256 of the first n bytes of the file at p, or of
// all of it when n < 0.
func hashPrefix(p string, n int64) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	var r io.Reader = f
	if n >= 0 {
		r = io.LimitReader(f, n)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
