package solution

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/registrygen"
)

// BuildOptions are the inputs of Build that do not come from the source.
type BuildOptions struct {
	// Output is the ISO to write. Its directory also receives SHA256SUM and
	// the temporary staging tree.
	Output string
	// CacheDir is the content-addressed blob cache (oci.Cache); required.
	CacheDir string
	// Epoch is every date of the archive (BUILD_TIMESTAMP, ISO dates, image
	// timestamps). Zero: SOURCE_DATE_EPOCH, else the current time (the
	// archive is then not reproducible).
	Epoch time.Time
	// Git is product.txt's GIT; empty: `git describe` of the source
	// directory, or nothing outside git.
	Git string
	// Mirrors and Insecure are passed to the image fetcher (IMAGE_MIRRORS).
	Mirrors  map[string]string
	Insecure []string
	// Platform of the images, os/arch; default linux/amd64.
	Platform string
	// Log receives one line per step; nil is silent.
	Log io.Writer
}

// BuildResult describes a written archive.
type BuildResult struct {
	ISO     string
	SHA256  string
	Size    int64
	Product Product
	Images  []ImageInfo
}

// BuildArchive makes a Solution archive from src: a solution.yaml, a directory
// holding one, or a directory already laid out as an archive (product.txt,
// images/, operator/deploy/, ...) whose registry configuration is then
// regenerated. The archive is assembled in a staging tree, validated, written
// to a temporary ISO that is validated again, and only then renamed to
// opts.Output: a failure never leaves a partial or invalid archive there.
func BuildArchive(ctx context.Context, src string, opts BuildOptions) (*BuildResult, error) {
	if opts.Output == "" {
		return nil, fmt.Errorf("no output path")
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("no cache directory")
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	epoch, err := resolveEpoch(opts.Epoch)
	if err != nil {
		return nil, err
	}
	opts.Epoch = epoch
	outDir := filepath.Dir(opts.Output)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(outDir, fsutil.TempPrefix+"solution-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	root := filepath.Join(staging, "root")

	tree := ""
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		if _, err := os.Stat(filepath.Join(src, SourceFile)); os.IsNotExist(err) {
			if _, err := os.Stat(filepath.Join(src, ProductFile)); err == nil {
				tree = src
			}
		}
	}
	if tree != "" {
		logf("staging the archive tree %s", tree)
		if err := copyTree(tree, root, true); err != nil {
			return nil, err
		}
	} else {
		s, err := LoadSource(src)
		if err != nil {
			return nil, err
		}
		if err := stage(ctx, s, root, staging, opts, logf); err != nil {
			return nil, err
		}
	}
	imagesDir := filepath.Join(root, ImagesDir)
	if _, err := os.Stat(imagesDir); err == nil {
		st, err := oci.Dedup(imagesDir)
		if err != nil {
			return nil, fmt.Errorf("de-duplicating images: %w", err)
		}
		logf("images: %d files, %s shared by hard links", st.Files, oci.HumanBytes(st.Saved()))
		if err := WriteRegistryConfig(root, registrygen.OmitConstants); err != nil {
			return nil, err
		}
	}

	rep, err := Validate(ctx, root)
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		return nil, fmt.Errorf("the staged archive is invalid, no ISO written: %w", rep.Err())
	}
	p := *rep.Product
	logf("writing %s (volume ID %q)", opts.Output, p.VolumeID())
	var irep *Report
	isoOpts := iso.ProductOptions(p.VolumeID(), epoch)
	isoOpts.Verify = func(ctx context.Context, tmp string) error {
		r, err := Validate(ctx, tmp)
		if err != nil {
			return err
		}
		if !r.OK() {
			return fmt.Errorf("the written ISO does not validate, not kept: %w", r.Err())
		}
		irep = r
		return nil
	}
	res, err := iso.Write(ctx, opts.Output, root, isoOpts)
	if err != nil {
		return nil, err
	}
	logf("wrote %s: %s, sha256 %s", opts.Output, oci.HumanBytes(res.Size), res.SHA256)
	return &BuildResult{ISO: opts.Output, SHA256: res.SHA256, Size: res.Size, Product: p, Images: irep.Images}, nil
}

// WriteRegistryConfig writes root's registry-config.inc.j2: the nginx
// template that serves the images/ tree beside it as a read-only registry
// (12.2.4), the repository name and the mount point left as Jinja
// placeholders for the installer. mode says whether it carries the shared
// locations: a Solution's template omits them, the MetalK8s ISO's holds
// them. The file is replaced, never written through: in a staged tree it
// may be a hard link to the author's copy.
func WriteRegistryConfig(root string, mode registrygen.ConstantsMode) error {
	// The same function the validator compares an archive's template with.
	conf, err := registrygen.Template(os.DirFS(root), ImagesDir, mode)
	if err != nil {
		return fmt.Errorf("generating %s: %w", RegistryConfig, err)
	}
	return fsutil.WriteFile(filepath.Join(root, RegistryConfig), conf, 0o644)
}

// stage lays the archive out under root from a solution.yaml.
func stage(ctx context.Context, s *Source, root, staging string, opts BuildOptions, logf func(string, ...any)) error {
	platform := opts.Platform
	if platform == "" {
		platform = "linux/amd64"
	}
	pl, err := v1.ParsePlatform(platform)
	if err != nil {
		return fmt.Errorf("platform %q: %w", platform, err)
	}
	cache := oci.Cache{Dir: opts.CacheDir}
	m := &imageMaker{
		src: s, opts: &opts, cache: cache, platform: *pl,
		fetcher: &oci.Fetcher{Cache: cache, Mirrors: opts.Mirrors, Insecure: opts.Insecure, Platforms: []string{platform}},
		binDir:  filepath.Join(staging, "bin"),
		built:   map[string]string{},
	}
	for _, im := range s.Images {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := m.resolve(ctx, im)
		if err != nil {
			return fmt.Errorf("%s:%d: image %s:%s (%s): %w", s.File, im.Line, im.Name, im.Version, im.Kind, err)
		}
		dst := filepath.Join(root, ImagesDir, filepath.FromSlash(im.Name), im.Version)
		if err := oci.WriteDir(dst, res, cache); err != nil {
			return err
		}
		logf("image %s:%s from %s: %s", im.Name, im.Version, im.Kind, oci.DigestOf(res.Manifest))
	}
	if err := os.MkdirAll(filepath.Join(root, ImagesDir), 0o755); err != nil {
		return err
	}
	if err := copyTree(s.Operator, filepath.Join(root, filepath.FromSlash(OperatorDir)), false); err != nil {
		return fmt.Errorf("operator files: %w", err)
	}
	if s.UI != "" {
		if err := copyFile(s.UI, filepath.Join(root, filepath.FromSlash(UIDeployment))); err != nil {
			return fmt.Errorf("UI deployment: %w", err)
		}
	}
	git := opts.Git
	if git == "" {
		git = product.GitDescribe(s.Dir)
	}
	p := Product{Name: s.Name, Version: s.Version, RequireMetalK8s: s.RequireMetalK8s, LayoutVersion: LayoutVersion,
		Git: git, BuildTimestamp: opts.Epoch.UTC().Format(TimestampLayout)}
	data, err := p.Render()
	if err != nil {
		return fmt.Errorf("%s: %w", ProductFile, err)
	}
	return os.WriteFile(filepath.Join(root, ProductFile), data, 0o644)
}

// copyTree copies a directory of regular files and directories; links and
// special files are errors naming them, since the archive must not hold
// them and following them could pull in files from outside the source. With
// link, files are hard-linked when possible (large image trees).
func copyTree(src, dst string, link bool) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", src)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out := filepath.Join(dst, rel)
		switch t := d.Type(); {
		case t.IsDir():
			return os.MkdirAll(out, 0o755)
		case t.IsRegular():
			if link {
				if err := os.Link(p, out); err == nil {
					return nil
				}
			}
			return copyFile(p, out)
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link; archives hold regular files only (copy the file it points to)", p)
		default:
			return fmt.Errorf("%s is a special file", p)
		}
	})
}

func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

// resolveEpoch returns the build date: t, else SOURCE_DATE_EPOCH, else now.
func resolveEpoch(t time.Time) (time.Time, error) {
	if !t.IsZero() {
		return t.UTC(), nil
	}
	if e, ok, err := config.EpochFromEnv(); err != nil || ok {
		return e, err
	}
	return time.Now().UTC().Truncate(time.Second), nil
}
