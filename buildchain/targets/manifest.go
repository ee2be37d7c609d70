package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// beforeIso writes what the ISO root carries about itself: the SBOM, then
// the manifest, which lists the SBOM too.
func beforeIso(ctx context.Context, b *build.Session) error {
	if err := isoSBOM(ctx, b); err != nil {
		return err
	}
	if err := isoManifest(ctx, b); err != nil {
		return err
	}
	return manifestSignature(ctx, b)
}

// hashCache remembers each file's SHA-256 by its size, mtime and inode,
// as the step engine fingerprints outputs: every step publishes by
// rename, so a changed file always changes one of them, and a re-run
// hashes only what changed instead of the whole ISO root.
type hashCache map[string]cachedHash

type cachedHash struct {
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	SHA256  string `json:"sha256"`
}

func statKey(fi fs.FileInfo) (cachedHash, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return cachedHash{}, false
	}
	return cachedHash{Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano(), Dev: uint64(st.Dev), Ino: st.Ino}, true
}

// unknownSum stands, in a plan, for the hash of a file not in the cache.
var unknownSum = strings.Repeat("0", 64)

func sameFile(a, b cachedHash) bool {
	return a.Size == b.Size && a.MtimeNS == b.MtimeNS && a.Dev == b.Dev && a.Ino == b.Ino
}

func manifestCachePath(b *build.Session) string {
	return filepath.Join(b.Cfg.BuildRoot, "cache", "isomanifest.json")
}

// buildManifest lists the ISO root, hashing only the files the cache does
// not know in their current state.
func buildManifest(b *build.Session) ([]byte, error) {
	cachePath := manifestCachePath(b)
	old := hashCache{}
	oldData, err := os.ReadFile(cachePath)
	if err == nil {
		// A cache that does not parse is only a slower run.
		_ = json.Unmarshal(oldData, &old)
	}
	next := hashCache{}
	planning := b.Engine.Planning()
	root := b.Cfg.RootDir()
	entries, err := isomanifest.Build(os.DirFS(root), func(fsys fs.FS, p string, _ fs.FileInfo) (string, error) {
		// Stat through the links the manifest follows.
		fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return "", err
		}
		key, ok := statKey(fi)
		if c, hit := old[p]; ok && hit && c.SHA256 != "" {
			if k := c; sameFile(k, key) {
				next[p] = c
				return c.SHA256, nil
			}
		}
		if planning {
			// A plan only needs to know that the manifest would change,
			// which a file the cache does not know already says; hashing
			// gigabytes of freshly pulled layers to list steps would not do.
			return unknownSum, nil
		}
		sum, err := isomanifest.HashFile(fsys, p, fi)
		if err != nil {
			return "", err
		}
		if ok {
			key.SHA256 = sum
			next[p] = key
		}
		return sum, nil
	})
	if err != nil {
		return nil, err
	}
	data, err := isomanifest.Marshal(entries)
	if err != nil {
		return nil, err
	}
	cache, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	if planning || bytes.Equal(cache, oldData) {
		// A plan writes nothing; nor does a run where no file changed.
		return data, nil
	}
	if err := fsutil.WriteFile(cachePath, cache, 0o644); err != nil {
		return nil, err
	}
	return data, nil
}

// isoManifest writes root/MANIFEST.sha256 (docs/integrity.md). Its input
// is the manifest's own content, computed first: the file lives in the
// root it lists, so a stat of the root would change with every write.
func isoManifest(ctx context.Context, b *build.Session) error {
	data, err := buildManifest(b)
	if err != nil {
		return err
	}
	out := filepath.Join(b.Cfg.RootDir(), isomanifest.Name)
	return b.Engine.Run(ctx, step.Step{
		Name:    "iso-manifest",
		Inputs:  []step.Input{step.Value("content", string(data))},
		Outputs: []string{out},
		Run:     func(context.Context) error { return fsutil.WriteFile(out, data, 0o644) },
	})
}
